"""The docker backend needs a running engine; without one these tests skip and print why.

An engine is used when `$DOCKER_HOST` (or the default socket) answers, or the podman one that
`sandboxes/podman_engine.sh` sets up; with `TURNGYM_DOCKER_ENGINE=podman` the tests start that one if needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from turngym.sandboxes import Limits, make_sandbox
from turngym.sandboxes.docker import docker_status

from .conftest import backend_or_skip, docker_engine


@pytest.fixture(scope="module")
def docker_ok():
    """Every test using this fixture is marked `docker` (tests/sandboxes/conftest.py) and needs an engine."""
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


def test_docker_container_killed_is_replaced(docker_ok):
    """The container itself dies (killed from outside, or its pid 1 OOM-killed): the call says so, the next one works
    in a new container."""
    with make_sandbox("docker") as sb:
        sb.write_file("a.txt", "1")
        old = sb.container.id
        sb.container.kill()
        r = sb.run("echo after")
        assert r.error and "restarted in a new one" in r.error, r
        assert sb.container.id != old
        assert sb.run("echo again; ls").stdout == "again\n"  # a fresh container: the old files are gone
    assert containers_with_id(old) == []


def test_docker_oom_kill_inside_the_container_is_reported(docker_ok):
    """8 processes of 100 MiB each against total_memory_mb=256: the kernel kills some (the container's cgroup), and
    the call says oom; an ordinary call afterwards does not."""
    code = (
        "import os, time\npids = []\n"
        "for i in range(8):\n    pid = os.fork()\n"
        "    if pid == 0:\n        b = b'x' * (100 << 20)\n        time.sleep(3)\n        os._exit(0)\n"
        "    pids.append(pid)\n"
        "print(sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids))\n"
    )
    # conmon's OOM marker goes to the engine's working directory, never the caller's
    marker = Path.cwd() / "oom"
    had_marker = marker.exists()
    with make_sandbox("docker", limits=Limits(total_memory_mb=256, memory_mb=200, wall_s=20)) as sb:
        r = sb.run_python(code)
        assert r.oom and "-9" in r.stdout, r
        r = sb.run_python("print(len(bytearray(10 << 20)))")
        assert r.ok and not r.oom and r.stdout == f"{10 << 20}\n", r
    assert had_marker or not marker.exists(), f"the OOM kill left {marker}"


def test_docker_files_count_against_memory_and_an_oom_is_reported(docker_ok):
    """The tmpfs workdir's pages are the container's memory: 250 MiB of files against total_memory_mb=128 (disk_mb
    512) end in the kernel's OOM killer. The call says oom with what happened, and the next call works."""
    lim = Limits(total_memory_mb=128, disk_mb=512, file_mb=300, wall_s=20)
    with make_sandbox("docker", limits=lim) as sb:
        r = sb.run("head -c 250M /dev/zero > big; echo wrote")
        assert r.oom and r.error and "OOM" in r.error and "restarted" in r.error, r
        r = sb.run("echo alive")
        assert r.ok and r.stdout == "alive\n", r


def containers_with_id(cid: str) -> list[str]:
    import docker

    client = docker.from_env(timeout=10)
    try:
        return [c.id for c in client.containers.list(all=True, filters={"id": cid})]
    finally:
        client.close()


def test_docker_status_explains_itself():
    ok, why = docker_status()
    assert ok or why  # when it is unavailable the reason is not empty


class _BwrapEngine:
    """Stands in for a docker engine where none runs: executes the exact exec argv the docker backend sends (worker
    source + request in argv) with bubblewrap, a tmp dir bound at /workspace. Checks the one-shot protocol; the tests
    above run the same calls against a real engine where one answers."""

    id = "bwrap-stand-in"

    def __init__(self, workdir):
        self.workdir = workdir
        self.api = self
        self.execs: dict[str, tuple[list[str], str, str]] = {}
        self.exit_codes: dict[str, int] = {}

    def exec_create(self, container, argv, stdout, stderr, user, workdir):
        assert container == self.id and stdout and stderr and user == "1000:1000"
        exec_id = f"exec-{len(self.execs)}"
        self.execs[exec_id] = (argv, user, workdir)
        return {"Id": exec_id}

    def exec_start(self, exec_id, demux):
        import shutil
        import subprocess

        argv, _, workdir = self.execs[exec_id]
        cmd = [shutil.which("bwrap"), "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
               "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(self.workdir), "/workspace",
               "--chdir", workdir, "--uid", "1000", "--gid", "1000", "--clearenv", "--setenv", "PATH", "/usr/bin"]  # fmt: skip
        r = subprocess.run(cmd + argv, capture_output=True, timeout=60)
        self.exit_codes[exec_id] = r.returncode
        return (r.stdout, r.stderr) if demux else r.stdout + r.stderr

    def exec_inspect(self, exec_id):
        return {"ExitCode": self.exit_codes.get(exec_id)}

    def remove(self, force):
        pass

    def close(self):
        pass


def test_docker_worker_protocol(tmp_path):
    from turngym.sandboxes import available
    from turngym.sandboxes.docker import DockerSandbox

    if not available("bwrap")[0]:
        pytest.skip("needs bwrap to stand in for the container")
    sb = DockerSandbox(limits=Limits(wall_s=2))
    stand_in = _BwrapEngine(tmp_path)
    sb.container = sb._client = stand_in
    sb.started = True
    sb.write_file("pkg/a.py", "X = 41\n")
    assert sb.read_file("pkg/a.py") == "X = 41\n"
    r = sb.run_python("from pkg.a import X\nprint(X + 1)")
    assert r.ok and r.stdout == "42\n"
    assert sb.run_python("while True: pass").timed_out
    big = "print(len('" + "x" * 150_000 + "'))"
    assert sb.run_python(big).stdout == "150000\n"  # compressed into argv
    sb.stop()


def test_docker_unavailable_is_a_clear_error():
    from turngym.errors import ConfigError

    ok, why = docker_engine()
    if ok:
        pytest.skip("a docker engine is available here")
    with pytest.raises(ConfigError, match="sandbox backend 'docker' is not available here"):
        make_sandbox("docker")
