"""The sandbox interface on every available backend: calls, files, limits, restarts, pool, selection."""

from __future__ import annotations

import os

import pytest

from turngym.errors import ConfigError, UnknownNameError
from turngym.sandboxes import Limits, SandboxPool, make_sandbox, resolve_backend
from turngym.sandboxes.worker import uid_pids


@pytest.fixture
def sb(backend):
    s = make_sandbox(backend, limits=Limits(wall_s=5, memory_mb=256), files={"data/in.txt": "3 4\n"})
    s.start()
    yield s
    s.stop()


def test_python_and_shell(sb):
    r = sb.run_python("a, b = map(int, open('data/in.txt').read().split())\nprint(a * b)")
    assert r.ok and r.stdout == "12\n" and r.stderr == ""
    r = sb.run("echo out; echo err >&2; exit 3")
    assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 3)
    r = sb.run(["/bin/cat"], stdin="piped")
    assert r.stdout == "piped"
    r = sb.run_python("import sys\nprint(sys.stdin.read()[::-1])", stdin="abc")
    assert r.stdout == "cba\n"


def test_python_errors_are_reported(sb):
    r = sb.run_python("def f():\n    return 1 / 0\nf()")
    assert r.exit_code == 1 and "ZeroDivisionError" in r.stderr and "main.py" in r.stderr
    r = sb.run_python("import sys\nsys.exit(4)")
    assert r.exit_code == 4
    r = sb.run(["/no/such/binary"])
    assert r.exit_code == 127 and "No such file" in r.stderr


def test_state_does_not_persist_but_files_do(sb):
    sb.run_python("x = 5\nopen('x.txt', 'w').write('5')")
    r = sb.run_python("print('x' in globals(), open('x.txt').read())")
    assert r.stdout == "False 5\n"


def test_env_is_scrubbed(sb, monkeypatch):
    monkeypatch.setenv("TURNGYM_TEST_SECRET", "s3cret")
    r = sb.run("env")
    assert "s3cret" not in r.stdout and "PATH=" in r.stdout
    assert sb.run("echo $HOME").stdout.strip() == sb.inner_workdir


def test_files_and_reset(sb):
    sb.write_file("pkg/mod.py", "VALUE = 7\n")
    assert sb.read_file("pkg/mod.py") == "VALUE = 7\n"
    assert sb.run_python("from pkg.mod import VALUE\nprint(VALUE)").stdout == "7\n"
    with pytest.raises(FileNotFoundError):
        sb.read_file("nope.txt")
    with pytest.raises(PermissionError, match="outside the workdir"):
        sb.read_file("../../../etc/hostname")
    sb.run("ln -s /etc/hostname link")
    with pytest.raises(PermissionError, match="outside the workdir"):
        sb.read_file("link")
    sb.reset({"only.txt": "1"})
    assert sb.run("ls -A").stdout.split() == ["only.txt"]


def test_limits_give_clear_results(sb):
    r = sb.run_python("import time\ntime.sleep(5)", timeout=0.5)
    assert r.timed_out and not r.ok and r.duration < 2
    r = sb.run_python("x = bytearray(1 << 30)")
    assert r.oom and "MemoryError" in r.stderr
    r = sb.run_python("print('y' * 200000)")
    assert r.output_truncated and len(r.stdout) == sb.limits.output_bytes


def test_worker_killed_is_restarted(sb):
    r = sb.run_python("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert r.error and "restarted" in r.error
    sb.write_file("after.txt", "ok")
    assert sb.run_python("print(open('after.txt').read())").stdout == "ok\n"


def test_stop_leaves_nothing(backend):
    s = make_sandbox(backend).start()
    s.run("sleep 30 &")
    tmp, uid = getattr(s, "_tmp", None), getattr(s, "uid", None)
    cgroup = getattr(s, "cgroup", None)
    container = getattr(s, "container", None)
    s.stop()
    if container is not None:  # docker: the container is removed, not only stopped
        from .test_docker import containers_with_id

        assert containers_with_id(container.id) == []
    if tmp is not None:
        assert not os.path.exists(tmp)
    if cgroup is not None:
        assert not any(d.exists() for d in cgroup.dirs)
    if uid is not None:
        assert uid_pids(uid) == []
    s.stop()  # idempotent


def test_pool_reuses_sandboxes(backend):
    with SandboxPool(lambda: make_sandbox(backend), size=1) as pool:
        with pool.sandbox({"a.txt": "1"}) as s1:
            s1.write_file("junk.txt", "x")
        with pool.sandbox({"b.txt": "2"}) as s2:
            assert s2 is s1
            assert sorted(s2.run("ls").stdout.split()) == ["b.txt"]
        assert pool.created == 1


def test_selection_and_bad_input():
    assert resolve_backend("auto") in ("bwrap", "docker", "process")
    with pytest.raises(UnknownNameError, match="unknown sandbox backend"):
        make_sandbox("chroot")
    with pytest.raises(ConfigError, match="wall_s"):
        Limits(wall_s=0)
    s = make_sandbox("process")
    with pytest.raises(ConfigError, match="cmd must be"):
        s.run([])


def test_auto_prefers_bwrap_when_it_works():
    from turngym.sandboxes import available

    if available("bwrap")[0]:
        sb = make_sandbox("auto")
        assert sb.backend == "bwrap" and sb.secure
