"""The Docker backend (the `docker` SDK): one container per sandbox, `--network none`, a read-only root filesystem,
a writable tmpfs workdir, memory/pids/CPU limits, all capabilities dropped, an unprivileged user.

The container's main process is a tiny reaper (pid 1: orphans end up there; unreaped zombies would count against the
pids limit and make every later exec fail); each call is one `exec` of the same worker the other
backends use, in one-shot mode: the worker's source and the request travel zlib+base64-encoded in the exec's argv
(no `put_archive`, which a read-only root refuses), and the worker forks the code under rlimits and a wall clock,
then sweeps leftovers. File reads and writes are worker requests too. The image needs `python3` on its PATH (default
`$TURNGYM_DOCKER_IMAGE`, else `python:3.11-slim`; pull it beforehand where no registry is reachable).

Everything writable is a size-limited tmpfs: `/workspace`, `/tmp` and `/dev/shm` share `Limits.disk_mb` (one eighth
each for /tmp and /dev/shm, the rest for the workdir). `reset()` replaces the container.

Without a Docker engine, `sandboxes/podman_engine.sh` sets one up from Debian packages (podman serving the Docker
API, an image built with debootstrap); `use_engine()` finds it or starts it.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import shutil
import subprocess
import time
import weakref
import zlib
from pathlib import Path
from typing import Any, ClassVar

from turngym.errors import ConfigError
from turngym.optional import require
from turngym.sandboxes.base import SERVER, Limits, Sandbox, SandboxError

log = logging.getLogger(__name__)
DEFAULT_IMAGE = "python:3.11-slim"
ENGINE_SCRIPT = Path(__file__).resolve().parent / "podman_engine.sh"
ENGINE_DIR = (
    "/var/lib/turngym-engine"  # podman_engine.sh's state; its shared service listens on podman.sock there
)
ENGINE_IMAGE = "localhost/turngym-python:bookworm"  # the image it builds
MAX_ARG = 120_000  # Linux caps one argv string at 128 KiB


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 9)).decode()


_SERVER_PACKED = _pack(SERVER.read_bytes())
# the container's pid 1: reaps the orphans the worker's sweep kills (zombies would count against pids_limit)
REAPER = (
    "import os, time\n"
    "while True:\n"
    "    try:\n        os.wait()\n"
    "    except ChildProcessError:\n        time.sleep(0.2)\n"
)
# argv[1] = the worker's source, argv[2] = the request; the worker answers one JSON line on stdout
BOOT = (
    "import sys, zlib, base64\n"
    "src = zlib.decompress(base64.b64decode(sys.argv[1]))\n"
    "sys.argv = ['server.py', '--once-b64', sys.argv[2], '/workspace', '--sweep']\n"
    "exec(compile(src, 'server.py', 'exec'))\n"
)


def default_image() -> str:
    return os.environ.get("TURNGYM_DOCKER_IMAGE") or DEFAULT_IMAGE


def docker_status(image: str | None = None) -> tuple[bool, str]:
    """(engine reachable and the image present?, why not) — the reason is printed by tests that skip."""
    try:
        docker = require("docker", extra="docker", purpose="the docker sandbox")
    except ImportError as exc:
        return False, str(exc)
    image = image or default_image()
    try:
        client = docker.from_env(timeout=5)
    except Exception as exc:
        return False, f"docker engine not reachable ({type(exc).__name__}: {exc})"
    try:
        client.ping()
    except Exception as exc:
        return False, f"docker engine not reachable ({type(exc).__name__}: {exc})"
    try:
        client.images.get(image)
    except Exception as exc:
        return False, f"image {image!r} is not on the engine ({type(exc).__name__}); pull or build it first"
    finally:
        client.close()
    return True, ""


def engine_dir() -> str:
    return os.environ.get("TURNGYM_ENGINE_DIR") or ENGINE_DIR


ENGINE_MODES = ("podman", "auto", "none")


def engine_mode() -> str:
    """`$TURNGYM_DOCKER_ENGINE`: "podman" (start one with the script), "auto" (start one where that can work: root
    with podman installed or apt-get to install it), "none" (never start one). Unset: "none"."""
    mode = os.environ.get("TURNGYM_DOCKER_ENGINE", "").strip().lower() or "none"
    if mode not in ENGINE_MODES:
        raise ConfigError(f"TURNGYM_DOCKER_ENGINE must be one of {list(ENGINE_MODES)}, got {mode!r}")
    return mode


def engine_can_start() -> tuple[bool, str]:
    """(could `podman_engine.sh` set an engine up here?, why not): needs root, and podman or apt-get to install it."""
    if not ENGINE_SCRIPT.is_file():
        return False, f"{ENGINE_SCRIPT} is missing (it ships in the source tree: use a checkout of turngym)"
    if os.geteuid() != 0:
        return (
            False,
            f"sandboxes/{ENGINE_SCRIPT.name} needs root (it installs Debian packages and runs podman)",
        )
    if shutil.which("podman") or shutil.which("apt-get"):
        return True, ""
    return False, "podman is not installed and there is no apt-get to install it"


def use_engine(start: bool | str | None = None) -> tuple[bool, str]:
    """Make the docker backend usable in this process: (usable?, why not).

    Uses `$DOCKER_HOST` (or the default socket) when it answers, else the shared podman engine of `podman_engine.sh`
    (`$TURNGYM_ENGINE_DIR/podman.sock`) when it answers. When neither does and `start` is True (or "auto" and
    `engine_can_start()`; default: `engine_mode()`), runs the script (needs root; installs podman, runc and
    debootstrap and builds the image the first time, about 2.5 min here; then under a second) for a service of this
    process's own, on its own socket. That service is stopped, and the containers this process left are removed,
    when the process exits (atexit) or, if it is killed, by the script's watcher. Sets `DOCKER_HOST` and
    `TURNGYM_DOCKER_IMAGE` in `os.environ` when it picks a podman engine.
    """
    from turngym.sandboxes import _AVAILABLE

    if start is None:
        start = engine_mode()
    if isinstance(start, str):
        if start not in ENGINE_MODES:
            raise ConfigError(
                f"use_engine(start=...) must be a bool or one of {list(ENGINE_MODES)}, got {start!r}"
            )
        start = start == "podman" or (start == "auto" and engine_can_start()[0])
    _AVAILABLE.pop("docker", None)
    ok, why = docker_status()
    if ok:
        return True, ""
    shared = os.path.join(engine_dir(), "podman.sock")
    if not os.environ.get("DOCKER_HOST") and os.path.exists(shared):
        os.environ["DOCKER_HOST"] = f"unix://{shared}"
        os.environ.setdefault("TURNGYM_DOCKER_IMAGE", ENGINE_IMAGE)
        ok, why2 = docker_status()
        if ok:
            return True, ""
        del os.environ["DOCKER_HOST"]
        why = f"{why}; {why2}"
    if not start:
        hint = engine_can_start()[1] or (
            f"set TURNGYM_DOCKER_ENGINE=podman to start one with sandboxes/{ENGINE_SCRIPT.name}, "
            f'or run `eval "$(sandboxes/{ENGINE_SCRIPT.name})"` as root'
        )
        return False, f"{why} ({hint})"
    sock = os.path.join(engine_dir(), f"podman-{os.getpid()}.sock")
    try:
        r = _engine_script("start", sock, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{ENGINE_SCRIPT.name} failed: {exc}"
    if r.returncode != 0:
        return False, f"{ENGINE_SCRIPT.name} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}"
    _ENGINES.append(sock)
    for line in r.stdout.splitlines():
        key, _, val = line.removeprefix("export ").partition("=")
        if key in ("DOCKER_HOST", "TURNGYM_DOCKER_IMAGE") and val:
            os.environ[key] = val
    return docker_status()


def _engine_env(sock: str) -> dict[str, str]:
    return {**os.environ, "TURNGYM_ENGINE_SOCK": sock, "TURNGYM_ENGINE_OWNER": str(os.getpid())}


def _engine_script(mode: str, sock: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Runs `podman_engine.sh MODE` for the service on `sock`, owned by this process."""
    return subprocess.run(
        ["bash", str(ENGINE_SCRIPT), mode],
        env=_engine_env(sock),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stop_engine(sock: str) -> str:
    """Stop the podman service that `use_engine` started on `sock` and remove the containers this process left.
    Returns what the script said (stderr)."""
    if sock in _ENGINES:
        _ENGINES.remove(sock)
    try:
        r = _engine_script("stop", sock, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{ENGINE_SCRIPT.name} stop failed: {exc}"
    return r.stderr.strip()


_ENGINES: list[str] = []  # sockets of the services use_engine started for this process
_LIVE: weakref.WeakSet[DockerSandbox] = (
    weakref.WeakSet()
)  # started sandboxes (their containers) of this process


@atexit.register
def _at_exit() -> None:
    """Remove the containers of sandboxes nobody stopped, then stop the engines this process started."""
    for sb in list(_LIVE):
        try:
            sb.stop()
        except Exception as exc:
            log.warning("could not stop a docker sandbox at exit: %s", exc)
    for sock in list(_ENGINES):
        stop_engine(sock)


class DockerSandbox(Sandbox):
    backend: ClassVar[str] = "docker"
    secure: ClassVar[bool] = True
    inner_workdir = "/workspace"

    def __init__(
        self, limits: Limits | None = None, files: dict[str, str] | None = None, image: str | None = None
    ):
        super().__init__(limits, files)
        self.image = image or default_image()
        self.container: Any = None
        self._client: Any = None
        self._oom_count = -1  # the container cgroup's OOM-kill count after the last call (-1: unknown)
        self._oom_seen = 0  # OOM kills noticed only after a call failed (the worker itself was killed)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return docker_status()

    def _start(self) -> None:
        docker = require("docker", extra="docker", purpose="the docker sandbox")
        self._client = docker.from_env()
        self._oom_count = -1
        lim = self.limits
        small = max(1, int(lim.disk_mb) // 8)  # /tmp and /dev/shm; the workdir gets the rest
        work = max(1, int(lim.disk_mb) - 2 * small)
        try:
            self.container = self._client.containers.run(
                self.image,
                command=["python3", "-I", "-S", "-c", REAPER],
                detach=True,
                auto_remove=False,
                network_mode="bridge" if lim.network else "none",
                mem_limit=f"{lim.total_memory_mb}m",
                memswap_limit=f"{lim.total_memory_mb}m",
                pids_limit=int(lim.nprocs),
                nano_cpus=1_000_000_000,
                read_only=True,
                tmpfs={
                    "/workspace": f"rw,exec,nosuid,nodev,size={work}m,mode=1777",  # podman refuses uid=
                    "/tmp": f"rw,nosuid,nodev,size={small}m,mode=1777",
                },
                shm_size=f"{small}m",
                user="1000:1000",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                working_dir="/workspace",
                environment=self.env_vars(),
                labels={"turngym.sandbox": "1", "turngym.owner": str(os.getpid())},
            )  # fmt: skip
        except Exception as exc:
            self._stop()
            raise SandboxError(f"docker sandbox could not start from image {self.image!r}: {exc}") from exc
        _LIVE.add(self)

    def write_file(self, path: str, content: str) -> None:
        """Large contents go in several requests (each must fit in one exec's argv)."""
        self._write_part(path, content, append=False)

    def _write_part(self, path: str, content: str, append: bool) -> None:
        req = {"op": "write", "path": path, "content": content, "append": append}
        if len(content) > 1 and len(_pack(json.dumps(req).encode())) > MAX_ARG:
            mid = len(content) // 2
            self._write_part(path, content[:mid], append)
            self._write_part(path, content[mid:], True)
            return
        reply = self._call(req, 10.0)
        if "error" in reply:
            raise PermissionError(reply["error"])

    def _disk_request(self) -> dict[str, Any]:
        # the container is its own memory cgroup: the worker reports the kernel's OOM kills in it as oom=True
        disk_paths = ["/workspace", "/tmp", "/dev/shm"]
        return {"disk": int(self.limits.disk_mb) << 20, "disk_paths": disk_paths, "oom_cgroup": True}

    def _request(self, req: dict[str, Any], deadline: float) -> dict[str, Any]:
        payload = _pack(json.dumps(req).encode())
        if len(payload) > MAX_ARG:
            raise SandboxError(f"request of {len(payload)} encoded bytes is too large for the docker backend")
        argv = ["python3", "-I", "-S", "-B", "-c", BOOT, _SERVER_PACKED, payload]
        # The low-level calls, not `exec_run`: its final `exec_inspect` (only for the exit code, which the worker's
        # JSON reply already holds) races with engines that drop an exec session as soon as it ends (podman with
        # `exit_command_delay = 0`, which podman_engine.sh sets so that no conmon lingers for 5 minutes per call).
        api = self._client.api
        try:
            exec_id = api.exec_create(
                self.container.id, argv, stdout=True, stderr=True, user="1000:1000", workdir="/workspace"
            )["Id"]
            out, err = api.exec_start(exec_id, demux=True)
        except Exception as exc:  # the engine refused or the container is gone (e.g. pid 1 killed for memory)
            raise self._failed(f"the docker engine failed the call ({type(exc).__name__}: {exc})") from exc
        if time.monotonic() > deadline:
            log.warning("docker call overran its deadline")
        try:
            reply = json.loads((out or b"").decode("utf-8", "replace").strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError) as exc:
            raise self._failed(
                f"the docker worker gave no reply ({self._exit_status(exec_id)}; the code or the kernel's OOM "
                f"killer may have killed it): {(err or b'')[-300:]!r}"
            ) from exc
        if isinstance(reply.get("oom_kills"), int):
            self._oom_count = reply.pop("oom_kills")
        return reply

    def _exit_status(self, exec_id: str) -> str:
        """The exec's exit code where the engine still knows it (podman with exit_command_delay=0 forgets at once)."""
        try:
            code = self._client.api.exec_inspect(exec_id).get("ExitCode")
        except Exception:
            code = None
        return "exit status unknown" if code is None else f"exit {code}"

    def _oom_kills(self) -> int:
        return self._oom_seen

    def _failed(self, what: str) -> SandboxError:
        """After a call that got no reply: notice OOM kills, and replace the container when it is not running (its
        files are lost); a container that still runs is kept (the next call starts a new worker in it)."""
        state = self._state()
        if state.get("Running"):
            count = self._read_oom_count()
            if count < 0:  # no exec possible in a running container: it is going down; wait for it
                for _ in range(30):
                    time.sleep(0.1)
                    state = self._state()
                    if not state.get("Running"):
                        break
            else:
                if count > 0 and count > self._oom_count:  # -1: unknown before; a new container starts at 0
                    self._oom_seen += 1
                self._oom_count = count
                return SandboxError(
                    f"{what}; the container still runs: the sandbox was restarted (the next call starts a new "
                    "worker; files in the workdir were kept)"
                )
        # pid 1 ignores every signal from inside the container: a SIGKILL came from the kernel's OOM killer (or from
        # outside the sandbox, e.g. `docker kill`)
        oom = bool(state.get("OOMKilled")) or state.get("ExitCode") == 137
        self._oom_seen += oom
        why = (
            "stopped" if state.get("Running") is not False else f"stopped (exit {state.get('ExitCode', '?')})"
        )
        if oom:
            why = (
                "killed (SIGKILL): most likely by the kernel's OOM killer at total_memory_mb, which the files in "
                "/workspace, /tmp and /dev/shm count against too"
            )
        self._stop()
        try:
            self._start()
        except SandboxError as exc:
            self.started = False
            return SandboxError(f"{what}; the container was {why}, and a new one could not start: {exc}")
        return SandboxError(
            f"{what}; the container was {why}: the sandbox was restarted in a new one (files in the workdir were lost)"
        )

    def _state(self) -> dict[str, Any]:
        """The container's `State` ({} when the engine no longer knows it)."""
        try:
            self.container.reload()
            return dict(self.container.attrs.get("State") or {})
        except Exception:
            return {}

    def _read_oom_count(self) -> int:
        """The OOM-kill count of the container's memory cgroup, read with one small exec (-1 if unknown)."""
        cmd = [
            "/bin/sh",
            "-c",
            "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null",
        ]
        try:
            exec_id = self._client.api.exec_create(self.container.id, cmd, user="1000:1000")["Id"]
            out = self._client.api.exec_start(exec_id) or b""
        except Exception:
            return -1
        for line in out.decode("utf-8", "replace").splitlines():
            key, _, val = line.partition(" ")
            if key == "oom_kill" and val.strip().isdigit():
                return int(val)
        return -1

    def _stop(self) -> None:
        _LIVE.discard(self)
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception as exc:
                log.warning("could not remove container %s: %s", getattr(self.container, "id", "?"), exc)
            self.container = None
        if self._client is not None:
            self._client.close()
            self._client = None
