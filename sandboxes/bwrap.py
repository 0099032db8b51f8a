"""The bubblewrap backend: new user, pid, net, ipc, uts and cgroup namespaces; a read-only /usr; a private /tmp.

Inside, the code sees only `/usr` (read-only, with the /bin, /lib symlinks), a few files of /etc, fresh `/proc` and
`/dev`, and three folders of its state (`sandboxes/worker.py`): the workdir at `/workspace`, `/tmp` and `/dev/shm`. The network namespace holds only a loopback device, so host
services (even on 127.0.0.1) and DNS are out of reach unless `Limits(network=True)`. When turngym runs as root, bwrap
itself is started under a dedicated unused uid, so RLIMIT_NPROC binds (a fork bomb stops at `nprocs`) and the
sandbox owns nothing on the host. The worker runs as pid 2 of its pid namespace and sweeps every other process after
each call; when the sandbox stops, the namespace (and whatever is in it) dies with it.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import ClassVar

from turngym.sandboxes.process import python_for_sandbox
from turngym.sandboxes.worker import WorkerSandbox

ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/ssl/certs")


class BwrapSandbox(WorkerSandbox):
    backend: ClassVar[str] = "bwrap"
    secure: ClassVar[bool] = True
    inner_workdir = "/workspace"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        exe = shutil.which("bwrap")
        if not exe:
            return False, "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
        try:
            r = subprocess.run(
                [exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin",
                 "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "/bin/true"],
                capture_output=True, timeout=10,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"bwrap failed to run: {exc}"
        if r.returncode != 0:
            return False, f"bwrap cannot create namespaces here: {r.stderr.decode(errors='replace').strip()}"
        return True, ""

    def _disk_paths(self) -> list[str]:
        return ["/workspace", "/tmp", "/dev/shm"]

    def _command(self) -> list[str]:
        assert self._tmp is not None and self.workdir is not None and self.state is not None
        cmd = [
            shutil.which("bwrap") or "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--uid", "1000", "--gid", "1000",
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/sbin", "/sbin",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc",
            "--dev", "/dev",
            "--bind", str(self.workdir), "/workspace",
            "--bind", str(self.state / "tmp"), "/tmp",
            "--bind", str(self.state / "shm"), "/dev/shm",
            "--ro-bind", str(self._tmp / "server.py"), "/opt/turngym/server.py",
            "--chdir", "/workspace",
            "--clearenv",
        ]  # fmt: skip
        for f in ETC_FILES:
            cmd += ["--ro-bind-try", f, f]
        if self.limits.network:
            cmd.append("--share-net")
            cmd += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
        return cmd + [
            python_for_sandbox(),
            "-I",
            "-S",
            "-B",
            "/opt/turngym/server.py",
            "/workspace",
            "--sweep",
        ]
