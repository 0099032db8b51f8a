"""The docker backend needs a running engine; without one these tests skip and print why.

An engine is used when `$DOCKER_HOST` (or the default socket) answers, or the podman one that
`sandboxes/podman_engine.sh` sets up; with `TURNGYM_DOCKER_ENGINE=podman` the tests start that one if needed.
"""

from __future__ import annotations

import pytest

from turngym.sandboxes import Limits, make_sandbox
from turngym.sandboxes.docker import docker_status

from .conftest import backend_or_skip, docker_engine


@pytest.fixture(scope="module")
def docker_ok():
    backend_or_skip("docker")


def test_docker_runs_code(docker_ok):
    with make_sandbox("docker", limits=Limits(wall_s=10)) as sb:
        r = sb.run_python("import os\nprint(os.getuid(), os.getcwd())")
        assert r.stdout == "1000 /workspace\n"
        sb.write_file("a.txt", "hi")
        assert sb.read_file("a.txt") == "hi"
        assert sb.run("touch /usr/x").exit_code != 0  # read-only root
        assert sb.run("cat /proc/1/cmdline").stdout.startswith("python3")  # the reaper is pid 1


def test_docker_large_write_is_split(docker_ok):
    import secrets

    text = secrets.token_hex(200_000)  # 400 kB that do not compress: far above one exec's argv
    with make_sandbox("docker") as sb:
        sb.write_file("big.txt", text)
        assert sb.read_file("big.txt", max_bytes=1 << 20) == text


def test_docker_zombies_do_not_use_up_the_pids_limit(docker_ok):
    """Orphans killed by the sweep are reaped by pid 1; before, 40 of them made every later exec fail."""
    with make_sandbox("docker", limits=Limits(nprocs=24)) as sb:
        for _ in range(3):
            r = sb.run("for i in $(seq 1 15); do (sleep 30 &) ; done; echo ok")
            assert r.stdout == "ok\n", r
        assert sb.run_python("print('alive')").stdout == "alive\n"


def test_docker_status_explains_itself():
    ok, why = docker_status()
    assert ok or why  # when it is unavailable the reason is not empty


class _BwrapExec:
    """Stands in for a docker container where no engine runs: executes the exact exec argv the docker backend sends
    (worker source + request in argv) with bubblewrap, a tmp dir bound at /workspace. Checks the one-shot protocol."""

    def __init__(self, workdir):
        self.workdir = workdir

    def exec_run(self, argv, user, workdir, demux):
        import shutil
        import subprocess
        from collections import namedtuple

        cmd = [shutil.which("bwrap"), "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
               "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(self.workdir), "/workspace",
               "--chdir", workdir, "--uid", "1000", "--gid", "1000", "--clearenv", "--setenv", "PATH", "/usr/bin"]  # fmt: skip
        r = subprocess.run(cmd + argv, capture_output=True, timeout=60)
        return namedtuple("ExecResult", "exit_code output")(r.returncode, (r.stdout, r.stderr))


def test_docker_worker_protocol(tmp_path):
    from turngym.sandboxes import available
    from turngym.sandboxes.docker import DockerSandbox

    if not available("bwrap")[0]:
        pytest.skip("needs bwrap to stand in for the container")
    sb = DockerSandbox(limits=Limits(wall_s=2))
    sb.container, sb.started = _BwrapExec(tmp_path), True
    sb.write_file("pkg/a.py", "X = 41\n")
    assert sb.read_file("pkg/a.py") == "X = 41\n"
    r = sb.run_python("from pkg.a import X\nprint(X + 1)")
    assert r.ok and r.stdout == "42\n"
    assert sb.run_python("while True: pass").timed_out
    big = "print(len('" + "x" * 150_000 + "'))"
    assert sb.run_python(big).stdout == "150000\n"  # compressed into argv
    sb.container = None  # nothing to remove


def test_docker_unavailable_is_a_clear_error():
    from turngym.errors import ConfigError

    ok, why = docker_engine()
    if ok:
        pytest.skip("a docker engine is available here")
    with pytest.raises(ConfigError, match="sandbox backend 'docker' is not available here"):
        make_sandbox("docker")
