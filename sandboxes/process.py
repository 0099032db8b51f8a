"""The process backend: a worker in its own session with rlimits, a temp workdir and a scrubbed environment.

NOT a security boundary. It stops runaway code (wall/CPU time, memory, output, process count) and, when turngym runs
as root, runs the code under a dedicated unused uid, so files only root may read stay unreadable and every leftover
process can be found and killed. As root it also gets its own mount and IPC namespaces: /tmp, /var/tmp, /dev/shm and
/run/lock are the sandbox's own folders (in its quota, gone on reset), not the host's. It does not isolate the
network or the rest of the filesystem (world-readable files are readable, other world-writable host folders are
writable). Use it where nothing stronger runs.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import ClassVar

from turngym.sandboxes.worker import (
    CLONE_NEWIPC,
    CLONE_NEWNS,
    MS_BIND,
    MS_PRIVATE,
    MS_REC,
    SHARED_DIRS,
    WorkerSandbox,
    _check,
    _libc,
    mount,
)


def python_for_sandbox() -> str:
    """A fast-starting interpreter: the system python (no pyenv shim), else ours."""
    for cand in ("/usr/bin/python3",):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable


class ProcessSandbox(WorkerSandbox):
    backend: ClassVar[str] = "process"
    secure: ClassVar[bool] = False

    @property
    def inner_workdir(self) -> str:  # type: ignore[override]
        return str(self.workdir) if self.workdir is not None else "."

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""

    def _namespaces(self) -> None:
        """As root: a mount namespace where the shared writable folders are this sandbox's own, and an IPC one."""
        if os.geteuid() != 0 or self.state is None:
            return
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        for sub, target in SHARED_DIRS.items():
            if os.path.isdir(target) and not os.path.islink(target):
                mount(str(self.state / sub), target, None, MS_BIND)

    def _command(self) -> list[str]:
        assert self._tmp is not None and self.workdir is not None
        cmd = [python_for_sandbox(), "-I", "-S", "-B", str(self._tmp / "server.py"), str(self.workdir)]
        if self.uid is not None:
            cmd.append("--sweep")  # safe only because the uid is ours alone
        return cmd
