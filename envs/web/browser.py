"""The browser pool: one Playwright driver and one Chromium per thread, many isolated contexts, crash recovery.

Playwright's sync API is bound to the thread that started it (greenlets), so pools are kept per thread: every user in
a thread shares that thread's Chromium, each in its own `BrowserContext` (cookies, storage and cache are never shared
between episodes of different envs). `acquire_pool()`/`release_pool()` count users; when the last user of a thread
releases, the browser and the driver stop and any Chromium process still alive is killed, so `close()` leaves no
process behind.

The web envs are stepped from whatever thread their caller uses (the rollout engine steps envs from a thread pool),
so each env owns a `BrowserThread`: one thread that holds the env's Playwright driver and Chromium and runs every
browser call of the env (`call(fn)`), and stops both when the env closes.

If Chromium dies (killed, out of memory), `BrowserPool.new_context()` notices (the browser's main process is gone, or
Playwright reports the target closed) and launches a fresh browser. Do not use the sync API inside a running asyncio
event loop (Playwright refuses); run envs in a worker thread there.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from turngym.errors import ConfigError, EnvError
from turngym.optional import require

log = logging.getLogger(__name__)

DEFAULT_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
DEBIAN_CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class BrowserConfig:
    """How to launch Chromium. `executable_path="auto"` uses Debian's /usr/bin/chromium when present, else
    Playwright's bundled browser (`playwright install chromium`); None forces the bundled one."""

    executable_path: str | None = "auto"
    headless: bool = True
    args: tuple[str, ...] = DEFAULT_ARGS

    def resolved_executable(self) -> str | None:
        if self.executable_path == "auto":
            return DEBIAN_CHROMIUM if os.path.exists(DEBIAN_CHROMIUM) else shutil.which("chromium")
        if self.executable_path is not None and not os.path.exists(self.executable_path):
            raise ConfigError(
                f"executable_path {self.executable_path!r} does not exist; install Chromium "
                "(`apt-get install chromium`) or pass executable_path=None for Playwright's bundled browser"
            )
        return self.executable_path


# ---- process helpers (Linux /proc) -------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[1]), rest[0]
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int) -> set[int]:
    """Every live (non-zombie) process below `root`."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st and st[1] != "Z":
                parent[int(name)] = st[0]
    out: set[int] = set()
    frontier = {root}
    while frontier:
        kids = {p for p, pp in parent.items() if pp in frontier and p not in out}
        out |= kids
        frontier = kids
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _is_chromium(pid: int) -> bool:
    cmd = _cmdline(pid)
    return bool(cmd) and ("chrom" in os.path.basename(cmd[0]) or "headless_shell" in cmd[0])


def chromium_pids(root: int | None = None) -> set[int]:
    """Chromium processes (browser, renderers, helpers) below `root` (default: this process)."""
    return {p for p in descendants(os.getpid() if root is None else root) if _is_chromium(p)}


def browser_main_pids(root: int | None = None) -> set[int]:
    """Chromium main (browser) processes below `root`: those without a `--type=` switch."""
    return {p for p in chromium_pids(root) if not any(a.startswith("--type=") for a in _cmdline(p))}


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] != "Z"


# ---- the pool -----------------------------------------------------------------------------------------------------
@dataclass
class BrowserPool:
    """One Chromium for one thread; hands out fresh contexts and relaunches the browser when it died."""

    config: BrowserConfig
    driver: Any  # playwright.sync_api.Playwright
    browser: Any = None
    main_pid: int | None = None
    generation: int = 0  # bumped at every (re)launch: contexts of an older generation are dead
    users: int = 0
    _procs: set[int] = field(default_factory=set)

    def alive(self) -> bool:
        if self.browser is None:
            return False
        if self.main_pid is not None and not _alive(self.main_pid):
            return False
        try:
            return bool(self.browser.is_connected())
        except Exception:
            return False

    def launch(self) -> None:
        self._shutdown_browser()
        before = browser_main_pids()
        exe = self.config.resolved_executable()
        t0 = time.perf_counter()
        try:
            self.browser = self.driver.chromium.launch(
                executable_path=exe, headless=self.config.headless, args=list(self.config.args)
            )
        except Exception as exc:
            hint = (
                "install Debian's chromium (`apt-get install chromium`)"
                if exe is None
                else f"check that {exe} runs"
            )
            raise EnvError(
                f"could not launch Chromium ({exe or 'Playwright bundled'}): {exc}; {hint}"
            ) from exc
        new = browser_main_pids() - before
        self.main_pid = min(new) if new else None
        self.generation += 1
        log.info("launched Chromium pid=%s in %.2f s", self.main_pid, time.perf_counter() - t0)

    def new_context(self, **kwargs: Any) -> Any:
        """A fresh isolated `BrowserContext`; relaunches Chromium first if it is dead."""
        if not self.alive():
            if self.browser is not None:
                log.warning("Chromium (pid %s) is gone; launching a fresh browser", self.main_pid)
            self.launch()
        try:
            return self.browser.new_context(**kwargs)
        except Exception as exc:  # died between the check and the call
            log.warning("new_context failed (%s); relaunching Chromium", str(exc).split("\n", 1)[0])
            self.launch()
            return self.browser.new_context(**kwargs)

    def _shutdown_browser(self) -> None:
        if self.browser is None:
            return
        procs = chromium_pids(self.main_pid) | ({self.main_pid} if self.main_pid else set())
        try:
            self.browser.close()
        except Exception as exc:
            log.debug("browser.close(): %s", exc)
        self.browser = None
        _kill_all(procs)

    def shutdown(self) -> None:
        self._shutdown_browser()
        self.main_pid = None


def _kill_all(pids: set[int], wait_s: float = 3.0) -> None:
    deadline = time.time() + wait_s
    pids = {p for p in pids if _alive(p) and _is_chromium(p)}
    while pids and time.time() < deadline:
        time.sleep(0.02)
        pids = {p for p in pids if _alive(p)}
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


class _ThreadDriver:
    """The Playwright instance of one thread and its pools by config."""

    def __init__(self) -> None:
        sync_api = require("playwright.sync_api", extra="web", purpose="the web envs")
        self.playwright = sync_api.sync_playwright().start()
        self.pools: dict[BrowserConfig, BrowserPool] = {}

    def stop(self) -> None:
        for pool in self.pools.values():
            pool.shutdown()
        self.pools.clear()
        try:
            self.playwright.stop()
        except Exception as exc:
            log.debug("playwright.stop(): %s", exc)


_DRIVERS: dict[int, _ThreadDriver] = {}


def acquire_pool(config: BrowserConfig | None = None) -> BrowserPool:
    """This thread's pool for `config` (launching Chromium on first use). Pair with `release_pool`."""
    config = config or BrowserConfig()
    tid = threading.get_ident()
    drv = _DRIVERS.get(tid)
    if drv is None:
        drv = _DRIVERS[tid] = _ThreadDriver()
    pool = drv.pools.get(config)
    if pool is None:
        pool = drv.pools[config] = BrowserPool(config, drv.playwright)
    if not pool.alive():
        try:
            pool.launch()
        except Exception:
            if pool.users == 0:
                drv.pools.pop(config, None)
                if not drv.pools:
                    _DRIVERS.pop(tid, None)
                    drv.stop()
            raise
    pool.users += 1
    return pool


def release_pool(pool: BrowserPool) -> None:
    """Drop one user; the last one in a thread stops the browser and the Playwright driver."""
    pool.users -= 1
    if pool.users > 0:
        return
    tid = threading.get_ident()
    drv = _DRIVERS.get(tid)
    if drv is None or drv.pools.get(pool.config) is not pool:
        pool.shutdown()
        return
    pool.shutdown()
    del drv.pools[pool.config]
    if not drv.pools:
        del _DRIVERS[tid]
        drv.stop()


T = TypeVar("T")


class BrowserThread:
    """A thread that owns a Playwright driver (and its Chromium) and runs the calls given to it, one at a time.

    `call(fn, *args)` runs `fn` on the thread and returns its result (or raises its exception) in the caller's
    thread; a call made on the thread itself runs inline. `stop()` (from any thread) finishes the queued calls, stops
    whatever driver and browser the thread still holds, and joins it.
    """

    def __init__(self, name: str = "turngym-browser"):
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            fn, args, kwargs, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)
        drv = _DRIVERS.pop(threading.get_ident(), None)  # a user that never released: stop its browser
        if drv is not None:
            drv.stop()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        fut: Future[T] = Future()
        with self._lock:
            if self._stopped:
                raise EnvError("the browser thread was stopped (the env is closed)")
            self._queue.put((fn, args, kwargs, fut))
        return fut.result()

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("browser thread %s did not stop within %.0f s", self._thread.name, timeout)

    def stop_when_collected(self, owner: object) -> None:
        """Stop the thread when `owner` is garbage-collected without having stopped it."""
        weakref.finalize(owner, self.stop)
