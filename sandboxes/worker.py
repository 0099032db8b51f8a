"""The client side of the warm worker shared by the process and bubblewrap backends, and host-side process helpers.

`WorkerSandbox` starts `sandboxes/server.py` inside the sandbox (under a dedicated uid and a cgroup when root),
talks JSON lines to it over pipes, restarts it when the code kills it or it hangs, and kills everything on stop.

Everything the sandbox may write lives in one state folder on the host: `work/` (the workdir) and the folders the
backend shows as `/tmp`, `/var/tmp`, `/dev/shm` and `/run/lock`. When we are root the state folder is a tmpfs of
`Limits.disk_mb` (one quota for all of them; unmounted on stop, so nothing written survives, whatever its mode).
Elsewhere it is a plain folder and the worker measures it during each call instead.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

from turngym.sandboxes.base import SAFE_PATH, SERVER, Limits, Sandbox, SandboxError
from turngym.sandboxes.cgroup import Cgroup

log = logging.getLogger(__name__)
UID_RANGE = (420_000, 480_000)  # dedicated host uids for sandboxed code when we run as root
HOST_ROOT = "/run/turngym"  # where sandboxes keep their state when we are root (outside the /tmp they mask)
# state subfolder -> the shared writable folder it stands in for (bwrap and, as root, the process backend)
SHARED_DIRS = {"tmp": "/tmp", "vartmp": "/var/tmp", "shm": "/dev/shm", "lock": "/run/lock"}
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
CLONE_NEWNS, CLONE_NEWIPC, MNT_DETACH = 0x20000, 0x8000000, 2
_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); raises OSError naming the target."""

    def enc(v: str | None) -> bytes | None:
        return v.encode() if v is not None else None

    _check(
        _libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}"
    )


def umount(target: str) -> None:
    """Detach a mount (lazily: it goes away when nothing uses it)."""
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def force_rmtree(path: Path) -> None:
    """Delete a tree even where the sandbox made folders unreadable (chmod 000) with our uid."""

    def fix(d: str) -> None:
        try:
            os.chmod(d, 0o700)
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                fix(e.path)

    if path.is_dir() and not path.is_symlink():
        if os.geteuid() != 0:
            fix(str(path))
        shutil.rmtree(path, ignore_errors=True)


def dedicated_uid() -> int | None:
    """A host uid nobody uses (sandboxed code runs as it, so RLIMIT_NPROC binds and leftovers can be swept).

    None when we are not root (then the code runs as us and only the process group is cleaned up).
    """
    if os.geteuid() != 0:
        return None
    used = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                used.add(os.stat(f"/proc/{name}").st_uid)
            except OSError:
                pass
    rng = random.SystemRandom()
    while True:
        uid = rng.randrange(*UID_RANGE)
        if uid not in used:
            return uid


class WorkerSandbox(Sandbox):
    """A sandbox whose calls go to a long-lived `server.py` worker over pipes (process and bwrap backends)."""

    def __init__(self, limits: Limits | None = None, files: dict[str, str] | None = None):
        super().__init__(limits, files)
        self.proc: subprocess.Popen | None = None
        self.uid: int | None = None
        self.workdir: Path | None = None
        self._tmp: Path | None = None
        self.state: Path | None = None
        self.quota_mount = False  # the state folder is a size-limited tmpfs
        self.restarts = 0
        self.cgroup: Cgroup | None = None
        self._lock = threading.RLock()
        self._seq = 0
        self._rbuf = b""

    @abstractmethod
    def _command(self) -> list[str]:
        """The command line that starts the worker."""

    def _start(self) -> None:
        self.uid = dedicated_uid()
        base = None
        if os.geteuid() == 0:
            os.makedirs(HOST_ROOT, mode=0o755, exist_ok=True)
            base = HOST_ROOT
        self._tmp = Path(tempfile.mkdtemp(prefix=f"turngym-{self.backend}-", dir=base))
        srv = self._tmp / "server.py"
        shutil.copyfile(SERVER, srv)
        os.chmod(self._tmp, 0o755)
        os.chmod(srv, 0o644)
        self.state = self._tmp / "state"
        self.state.mkdir()
        self.quota_mount = False
        if os.geteuid() == 0:
            mb = int(self.limits.disk_mb)
            # inodes bounded too: empty files cost memory, not size
            opts = f"size={mb}m,nr_inodes={max(4096, mb * 128)},mode=0755"
            try:
                mount("tmpfs", str(self.state), "tmpfs", MS_NOSUID | MS_NODEV, opts)
                self.quota_mount = True
            except OSError as exc:
                log.warning(
                    "%s sandbox: no tmpfs for the disk quota (%s); measuring instead", self.backend, exc
                )
        self.workdir = self.state / "work"
        self.workdir.mkdir()
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        os.chmod(self.workdir, 0o700)
        for sub in SHARED_DIRS:
            (self.state / sub).mkdir()
            os.chmod(self.state / sub, 0o1777)
        self.cgroup = Cgroup.create(int(self.limits.total_memory_mb) << 20, int(self.limits.nprocs))
        # RLIMIT_NPROC counts every process of the (real) user: with a dedicated uid that is the sandbox alone;
        # without one it must leave room for what the user already runs.
        self._nproc = int(self.limits.nprocs) + (0 if self.uid is not None else user_tasks(os.getuid()))
        self._spawn()

    def _preexec(self) -> None:
        """In the worker's process before exec: join the cgroup (as root), set rlimits, drop to the sandbox uid."""
        if self.cgroup is not None:
            self.cgroup.join()
        self._namespaces()
        resource.setrlimit(resource.RLIMIT_NPROC, (self._nproc, self._nproc))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.uid is not None:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)

    def _namespaces(self) -> None:
        """In the worker's process before exec (as root): private mounts or IPC where the backend needs them."""

    def _disk_request(self) -> dict[str, Any]:
        return {
            "disk": int(self.limits.disk_mb) << 20,
            "disk_paths": self._disk_paths(),
            "disk_enforce": not self.quota_mount,
        }

    def _disk_paths(self) -> list[str]:
        """Where the sandbox's files are, as the worker sees them (the first one is on the quota mount)."""
        return [self.inner_workdir]

    def _oom_kills(self) -> int:
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    def _spawn(self) -> None:
        self._rbuf = b""
        self._errlog = open(self._tmp / "worker.log", "w+b")  # noqa: SIM115 - closed in _kill
        try:
            self.proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._errlog,
                cwd=str(self.workdir) if self.backend == "process" else "/",
                env={"PATH": SAFE_PATH, "LANG": "C.UTF-8"},
                start_new_session=True,
                preexec_fn=self._preexec,
                close_fds=True,
            )
        except OSError as exc:
            self._errlog.close()
            raise SandboxError(f"{self.backend} sandbox could not start: {exc}") from exc
        try:
            hello = self._readline(time.monotonic() + 15.0)
        except SandboxError as exc:
            self._kill()
            raise SandboxError(f"{self.backend} sandbox did not come up: {exc}") from exc
        if not hello.get("ready"):
            self._kill()
            raise SandboxError(f"{self.backend} sandbox sent {hello!r} instead of a ready message")

    def _worker_log(self) -> str:
        try:
            self._errlog.seek(0)
            return self._errlog.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError, AttributeError):
            return ""

    def _readline(self, deadline: float) -> dict[str, Any]:
        """The next JSON line from the worker ({} for a line that is not a JSON object)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._rbuf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxError("the sandbox worker did not answer in time")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                log_tail = self._worker_log()
                raise SandboxError(
                    "the sandbox worker exited (the code may have killed it)"
                    + (f": {log_tail}" if log_tail else "")
                )
            self._rbuf += chunk
        line, _, self._rbuf = self._rbuf.partition(b"\n")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return {}
        return obj if isinstance(obj, dict) else {}

    def _request(self, req: dict[str, Any], deadline: float) -> dict[str, Any]:
        with self._lock:  # one request at a time per worker
            return self._request_locked(req, deadline)

    def _request_locked(self, req: dict[str, Any], deadline: float) -> dict[str, Any]:
        for attempt in (0, 1):
            if self.proc is None or self.proc.poll() is not None:
                self._restart()
            try:
                assert self.proc is not None and self.proc.stdin is not None
                self._seq += 1
                self.proc.stdin.write(json.dumps({**req, "id": self._seq}).encode() + b"\n")
                self.proc.stdin.flush()
                while True:  # skip anything that is not the answer to this request (a stale or forged line)
                    reply = self._readline(deadline)
                    if reply.pop("id", None) == self._seq:
                        return reply
                    log.warning(
                        "%s sandbox: dropped a reply line that does not answer request %d",
                        self.backend,
                        self._seq,
                    )
            except (SandboxError, BrokenPipeError, OSError) as exc:
                log.info("%s sandbox worker failed (%s); restarting it", self.backend, exc)
                self._restart()
                if req.get("op") == "exec" or attempt == 1:
                    raise SandboxError(
                        f"{exc}; the sandbox was restarted (files in the workdir were kept)"
                    ) from exc
        raise AssertionError("unreachable")

    def _restart(self) -> None:
        self._kill()
        self.restarts += 1
        self._spawn()

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for f in (proc.stdin, proc.stdout):
                try:
                    if f:
                        f.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("%s sandbox worker %d did not exit after SIGKILL", self.backend, proc.pid)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        if self.uid is not None:
            kill_uid(self.uid)
        if getattr(self, "_errlog", None) is not None:
            self._errlog.close()

    def _stop(self) -> None:
        self._kill()
        if self.quota_mount and self.state is not None:
            try:
                umount(str(self.state))  # everything written, whatever its mode, is gone with the tmpfs
            except OSError as exc:
                log.warning("%s sandbox: %s", self.backend, exc)
            self.quota_mount = False
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self._tmp is not None:
            force_rmtree(self._tmp)
            self._tmp = None
        self.state = None


def uid_pids(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    st = f.read()
                if int(st.split("\nUid:", 1)[1].split()[0]) == uid and "\nState:\tZ" not in st:
                    out.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def user_tasks(uid: int) -> int:
    """Processes + threads of `uid` now (what RLIMIT_NPROC counts)."""
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return n


def kill_uid(uid: int, rounds: int = 100) -> None:
    """SIGKILL every process of `uid` until none is left (a fork bomb may race a single pass)."""
    for _ in range(rounds):
        pids = uid_pids(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    log.warning("processes of sandbox uid %d survived %d kill rounds", uid, rounds)
