"""The disk quota (`Limits.disk_mb`): many files, each under the per-file limit, cannot fill the host's disk.

Scaled down from "20 files of 60 MiB with a 64 MiB per-file limit": 20 files of 8 MiB against a 48 MiB quota. The
writes past the quota fail with ENOSPC inside the sandbox, the call reports `disk_full`, the env's observation says
so, the sandbox holds at most the quota (the workdir, /tmp and /dev/shm together), and deleting files frees room.
"""

from __future__ import annotations

import json
import os
import subprocess

import gymnasium as gym
import pytest

import turngym  # noqa: F401 - registers the ids
from turngym.sandboxes import Limits, make_sandbox

QUOTA_MB = 48
FILL = "for i in $(seq 1 20); do head -c 8M /dev/zero > {d}/f$i || break; done; echo wrote $(ls {d} | wc -l)"
MIB = 1 << 20


def held_bytes(sb) -> int:
    """Bytes the sandbox's files take, measured from the host where they live there, else inside."""
    state = getattr(sb, "state", None)
    if state is not None:
        out = subprocess.run(["du", "-s", "-B1", str(state)], capture_output=True, text=True).stdout
        return int(out.split()[0])
    r = sb.run("du -s -B1 -c /workspace /tmp /dev/shm | tail -n1")
    return int(r.stdout.split()[0])


def slack(sb) -> int:
    """How far past the quota the files may get: nothing with a size-limited mount; without one the worker measures
    every 50 ms while the call runs (what one call writes in that time)."""
    return 0 if getattr(sb, "quota_mount", True) else 64 * MIB


def test_many_files_under_the_file_limit_stop_at_the_quota(backend):
    lim = Limits(wall_s=20, disk_mb=QUOTA_MB, file_mb=16)
    with make_sandbox(backend, limits=lim) as sb:
        r = sb.run(FILL.format(d="."))
        assert r.disk_full, r
        assert "No space left on device" in r.stderr or "disk quota" in r.stderr, r.stderr
        assert int(r.stdout.split()[1]) < 20
        assert held_bytes(sb) <= QUOTA_MB * MIB + slack(sb)
        # /tmp and /dev/shm are inside the same quota
        r = sb.run("head -c 40M /dev/zero > /tmp/t; head -c 40M /dev/zero > /dev/shm/s; echo done")
        assert r.disk_full and held_bytes(sb) <= QUOTA_MB * MIB + slack(sb)
        # room again once files are deleted; reset() gives the whole quota back
        r = sb.run("rm -f f* /tmp/t /dev/shm/s; head -c 8M /dev/zero > again && echo ok")
        assert r.stdout == "ok\n" and not r.disk_full, r
        sb.reset({})
        assert held_bytes(sb) < MIB


def test_quota_mount_is_the_quota_as_root(backend):
    """As root the process and bwrap backends hold their files in a tmpfs of exactly `disk_mb` (not the host disk);
    docker's three tmpfs mounts (/workspace, /tmp, /dev/shm) add up to exactly `disk_mb`."""
    if backend == "docker":
        with make_sandbox(backend, limits=Limits(disk_mb=QUOTA_MB)) as sb:
            code = (
                "import os\nmounts = {l.split()[1]: l.split()[2] for l in open('/proc/mounts')}\n"
                "for p in ('/workspace', '/tmp', '/dev/shm'):\n"
                "    st = os.statvfs(p)\n    print(p, mounts.get(p), st.f_blocks * st.f_frsize)\n"
            )
            rows = [line.split() for line in sb.run_python(code).stdout.splitlines()]
        assert [(p, fs) for p, fs, _ in rows] == [
            ("/workspace", "tmpfs"),
            ("/tmp", "tmpfs"),
            ("/dev/shm", "tmpfs"),
        ]
        assert sum(int(n) for *_, n in rows) == QUOTA_MB * MIB, rows
        return
    if os.geteuid() != 0:
        pytest.skip("the quota mount needs root (without it the worker measures instead)")
    with make_sandbox(backend, limits=Limits(disk_mb=QUOTA_MB)) as sb:
        assert sb.quota_mount
        st = os.statvfs(sb.state)
        assert st.f_blocks * st.f_frsize == QUOTA_MB * MIB
        state = sb.state
    assert not os.path.exists(state)


def test_env_observation_names_the_quota(backend):
    env = gym.make(
        "turngym/Coding-v0", sandbox=backend, limits=Limits(wall_s=20, disk_mb=QUOTA_MB, file_mb=16)
    )
    try:
        env.reset(options={"task_id": "HumanEval/95"})
        obs, *_ = env.step(json.dumps({"name": "bash", "arguments": {"cmd": FILL.format(d=".")}}))
        text = obs["text"]
        assert f"disk quota reached ({QUOTA_MB} MiB" in text, text
        assert "No space left on device" in text or "the call was stopped" in text, text
        assert held_bytes(env.unwrapped.sandbox) <= QUOTA_MB * MIB + slack(env.unwrapped.sandbox)
        obs, *_ = env.step(
            json.dumps({"name": "write_file", "arguments": {"path": "big.txt", "content": "x" * 50_000}})
        )
        assert obs["text"].startswith("write_file failed") and "No space left" in obs["text"], obs["text"][
            :300
        ]
    finally:
        env.close()
