"""The sandbox interface: limits, results, and the base class the backends share.

A sandbox is a workdir plus a way to run code in it under limits. Backends implement `_start`, `_request` (one
JSON request to the worker inside the sandbox, `sandboxes/server.py`) and `_stop`; `sandboxes/worker.py` holds the
shared client of the process and bubblewrap backends.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from turngym.errors import ConfigError, TurngymError

log = logging.getLogger(__name__)

SERVER = Path(__file__).resolve().parent / "server.py"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxError(TurngymError, RuntimeError):
    """A sandbox could not start or its worker failed in a way a restart did not fix."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox (per call where it says so).

    wall_s: wall-clock seconds per call; cpu_s: CPU seconds per call; memory_mb: address space per process (MiB);
    nprocs: processes + threads of the sandbox user at once; output_bytes: bytes kept per stream per call (the call
    is stopped when a stream goes past it); file_mb: largest file a call may write; network: allow network access;
    total_memory_mb: memory of all the sandbox's processes together (a cgroup, where one can be created; see
    `sandboxes/cgroup.py`); disk_mb: all files the sandbox holds together (workdir, /tmp, /dev/shm; a size-limited
    tmpfs where the backend can mount one, see docs/sandboxes.md).
    """

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    nprocs: int = 64
    output_bytes: int = 65_536
    file_mb: int = 64
    network: bool = False
    total_memory_mb: int = 2048
    disk_mb: int = 512

    def __post_init__(self) -> None:
        names = (
            "wall_s",
            "cpu_s",
            "memory_mb",
            "nprocs",
            "output_bytes",
            "file_mb",
            "total_memory_mb",
            "disk_mb",
        )
        for name in names:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"Limits.{name} must be a positive number, got {v!r}")


@dataclass
class ExecResult:
    """What one call produced. `error` is set when the sandbox itself failed (and was restarted)."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    timed_out: bool = False
    oom: bool = False
    output_truncated: bool = False
    duration: float = 0.0
    killed_leftovers: int = 0
    disk_full: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.oom or self.error)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox(ABC):
    """One isolated workdir where code runs under `limits`. Use as a context manager or call `stop()`."""

    backend: ClassVar[str] = ""
    secure: ClassVar[bool] = False  # True when the backend is meant as a security boundary
    inner_workdir: str = "/workspace"

    def __init__(self, limits: Limits | None = None, files: dict[str, str] | None = None):
        self.limits = limits or Limits()
        self._initial_files = dict(files or {})
        self.started = False

    # ---- the interface -------------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def available(cls) -> tuple[bool, str]:
        """(usable here?, why not). Cheap; used by `make_sandbox("auto")`."""

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _request(self, req: dict[str, Any], deadline: float) -> dict[str, Any]: ...

    @abstractmethod
    def _stop(self) -> None: ...

    def start(self) -> Sandbox:
        if not self.started:
            self._start()
            self.started = True
            self.write_files(self._initial_files)
        return self

    def stop(self) -> None:
        if self.started:
            self.started = False
            self._stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            if getattr(self, "started", False):
                self.stop()
        except Exception:
            pass

    # ---- calls ---------------------------------------------------------------------------------------------------
    def run(
        self,
        cmd: str | list[str],
        *,
        stdin: str = "",
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run a command (a list is exec'd as is, a string through `/bin/sh -c`) in the workdir."""
        if isinstance(cmd, str):
            argv = ["/bin/sh", "-c", cmd]
        elif isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd):
            argv = list(cmd)
        else:
            raise ConfigError(f"cmd must be a string or a non-empty list of strings, got {cmd!r:.80}")
        return self._exec({"kind": "argv", "argv": argv}, stdin, timeout, env)

    def run_python(
        self, code: str, *, stdin: str = "", timeout: float | None = None, env: dict[str, str] | None = None
    ) -> ExecResult:
        """Run Python source as a fresh `__main__` (state does not persist between calls; files do)."""
        if not isinstance(code, str):
            raise ConfigError(f"code must be a string, got {type(code).__name__}")
        return self._exec({"kind": "python", "code": code}, stdin, timeout, env)

    def read_file(self, path: str, max_bytes: int = 1_000_000) -> str:
        """A workdir file's text. Raises FileNotFoundError/PermissionError with the sandbox's message."""
        reply = self._call({"op": "read", "path": path, "max_bytes": max_bytes}, 10.0)
        if "error" in reply:
            raise (
                FileNotFoundError(reply["error"])
                if "NotFound" in reply["error"]
                else PermissionError(reply["error"])
            )
        return reply["content"]

    def write_file(self, path: str, content: str) -> None:
        reply = self._call({"op": "write", "path": path, "content": content}, 10.0)
        if "error" in reply:
            raise PermissionError(reply["error"])

    def write_files(self, files: dict[str, str]) -> None:
        for path, content in files.items():
            self.write_file(path, content)

    def reset(self, files: dict[str, str] | None = None) -> None:
        """A fresh sandbox for the next episode, holding only `files` in its workdir.

        Everything the previous episode left is gone: its processes, its files anywhere it could write (workdir,
        /tmp, /dev/shm, whatever their modes), its IPC objects. The backend stops and starts again (a new worker,
        workdir and namespaces or container); the limits stay.
        """
        if self.started:
            self.started = False
            self._stop()
        self._start()
        self.started = True
        self.write_files(files or {})

    def env_vars(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": SAFE_PATH,
            "HOME": self.inner_workdir,
            "TMPDIR": self.inner_workdir,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
        }
        env.update(extra or {})
        return env

    def _exec(
        self, body: dict[str, Any], stdin: str, timeout: float | None, env: dict[str, str] | None
    ) -> ExecResult:
        wall = float(timeout if timeout is not None else self.limits.wall_s)
        req = {
            "op": "exec",
            **body,
            "stdin": stdin,
            "timeout": wall,
            "cpu": int(self.limits.cpu_s),
            "memory": int(self.limits.memory_mb) << 20,
            "file_size": int(self.limits.file_mb) << 20,
            "output": int(self.limits.output_bytes),
            "env": self.env_vars(env),
            **self._disk_request(),
        }
        t0 = time.monotonic()
        oom_before = self._oom_kills()
        try:
            reply = self._call(req, wall + 10.0)
        except SandboxError as exc:
            oom = self._oom_kills() > oom_before
            return ExecResult(exit_code=-1, error=str(exc), oom=oom, duration=time.monotonic() - t0)
        if "error" in reply and "stdout" not in reply:
            return ExecResult(exit_code=-1, error=str(reply["error"]), duration=time.monotonic() - t0)
        known = ExecResult.__dataclass_fields__
        res = ExecResult(**{k: v for k, v in reply.items() if k in known})
        if self._oom_kills() > oom_before:
            res.oom = True
        return res

    def _disk_request(self) -> dict[str, Any]:
        """What the worker needs to report (or, without a size-limited mount, enforce) the disk quota."""
        return {"disk": int(self.limits.disk_mb) << 20, "disk_paths": [self.inner_workdir]}

    def _oom_kills(self) -> int:
        """Processes of this sandbox the kernel killed for its memory limit so far (0 where unknown)."""
        return 0

    def _call(self, req: dict[str, Any], budget: float) -> dict[str, Any]:
        if not self.started:
            self.start()
        return self._request(req, time.monotonic() + budget)
