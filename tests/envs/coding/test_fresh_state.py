"""Nothing of one episode reaches the next: plant-and-read through `turngym/Coding-v0` on every backend here.

Episode 1 (HumanEval/95) plants a random token everywhere the agent can write — the workdir, $HOME, /tmp,
/dev/shm, /var/tmp, /run/lock, folders made unreadable (chmod 000), a SysV shared memory segment, env vars and module
globals of the pooled interpreter — and leaves processes running (background, nohup, setsid, a double-forked daemon
that keeps rewriting the token). It checks in the same episode that the plants worked. Episode 2 (HumanEval/102) on
the same env looks for the token in all those places; the host checks that no planted process survived and that the
sandbox's files take no more than its disk quota.
"""

from __future__ import annotations

import json
import os
import secrets

import gymnasium as gym
import pytest

import turngym  # noqa: F401 - registers the ids
from turngym.sandboxes import Limits
from turngym.sandboxes.attacks import marker_processes

from ...sandboxes.conftest import backend_or_skip

PLACES = ("/tmp", "/dev/shm", "/var/tmp", "/run/lock")


def bash(cmd: str) -> str:
    return json.dumps({"name": "bash", "arguments": {"cmd": cmd}})


def python(code: str) -> str:
    return json.dumps({"name": "python", "arguments": {"code": code}})


SHM = (
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]\n"
)


def plant(token: str, marker: str) -> list[str]:
    key = int(token[:7], 16)
    daemon = (
        "import os, sys, time\n"
        "if os.fork(): sys.exit(0)\n"
        "os.setsid()\n"
        "if os.fork(): sys.exit(0)\n"
        "for _ in range(600):\n"
        "    for d in ('.', '/tmp'):\n"
        "        try:\n"
        f"            open(os.path.join(d, 'daemon.txt'), 'w').write({token!r})\n"
        "        except OSError:\n            pass\n"
        "    time.sleep(0.1)\n"
    )
    places = " ".join(PLACES)
    return [
        bash(
            f"T={token}; echo $T > planted.txt; echo $T > $HOME/home.txt; mkdir -p .hidden && echo $T > .hidden/x\n"
            f"for d in {places}; do [ -w $d ] && echo $T > $d/planted.txt && mkdir -p $d/locked/deep "
            "&& echo $T > $d/locked/deep/s.txt && chmod 000 $d/locked/deep $d/locked; done\n"
            "mkdir -p locked/deep && echo $T > locked/deep/s.txt && chmod 000 locked/deep locked\n"
            f"sleep 3000.{marker}1 & nohup sleep 3000.{marker}2 >/dev/null 2>&1 &\n"
            f"setsid sleep 3000.{marker}3 & (setsid sleep 3000.{marker}4 &) ; disown -a\n"
            f"python3 -c {daemon!r} {marker}5\n"
            "cat planted.txt; cat /tmp/planted.txt /dev/shm/planted.txt; ls locked 2>&1 | head -1; sleep 0.3"
        ),
        python(
            f"import os, unittest, json\nos.environ['PLANTED'] = {token!r}\nunittest.PLANTED = {token!r}\n"
            f"json.PLANTED = {token!r}\n" + SHM + f"print('shm', libc.shmget({key}, 4096, 0o1000 | 0o666))\n"
        ),
        python(
            SHM + f"print('shm again', libc.shmget({key}, 0, 0))\n"
            "import os, unittest\nprint(os.environ.get('PLANTED'), getattr(unittest, 'PLANTED', None))\n"
        ),
    ]


def look(token: str) -> list[str]:
    key = int(token[:7], 16)
    places = " ".join(PLACES)
    return [
        bash(
            f"T={token}; ls -A; cat planted.txt home.txt .hidden/x daemon.txt 2>&1\n"
            f'for d in {places} "$HOME" "$PWD" .; do ls -A $d 2>/dev/null; cat $d/planted.txt $d/daemon.txt 2>/dev/null\n'
            "  chmod -R u+rwx $d/locked 2>/dev/null; cat $d/locked/deep/s.txt 2>/dev/null\n"
            '  grep -rs "$T" $d 2>/dev/null; done\n'
            "sleep 0.5; cat daemon.txt /tmp/daemon.txt 2>&1"
        ),
        python(
            SHM + f"print('shm', libc.shmget({key}, 0, 0), ctypes.get_errno())\n"
            "import os, unittest, json\n"
            "print(os.environ.get('PLANTED'), getattr(unittest, 'PLANTED', None), getattr(json, 'PLANTED', None))\n"
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["process", "bwrap", "docker"])
def test_nothing_crosses_episodes(backend):
    backend_or_skip(backend)
    if backend == "process" and os.geteuid() != 0:
        pytest.skip(
            "the process backend shares /tmp and the host's processes with us unless turngym runs as root"
        )
    token, marker = secrets.token_hex(16), str(secrets.randbelow(10**6))
    env = gym.make("turngym/Coding-v0", sandbox=backend, limits=Limits(wall_s=5, disk_mb=64))
    try:
        env.reset(options={"task_id": "HumanEval/95"})
        seen = []
        for action in plant(token, marker):
            obs, *_ = env.step(action)
            seen.append(obs["text"])
        # the plants worked: files readable, unreadable folders unreadable, shm made, globals set in that call
        assert seen[0].count(token) >= 2, seen[0]
        assert "Permission denied" in seen[0], seen[0]
        assert seen[1].startswith("shm ") and "shm -1" not in seen[1], seen[1]
        assert "shm again -1" not in seen[2], seen[2]  # the segment outlives the call that made it

        obs, info = env.reset(options={"task_id": "HumanEval/102"})
        sb = env.unwrapped.sandbox
        assert marker_processes(marker) == [], "a planted process survived reset()"
        texts = []
        for action in look(token):
            obs, *_ = env.step(action)
            texts.append(obs["text"])
        assert all(token not in t for t in texts), texts
        assert texts[1].startswith("shm -1 2\n"), texts[1]  # ENOENT: the segment is gone
        assert texts[1].splitlines()[1] == "None None None", texts[1]
        listing = sb.run_python("import os\nprint(sorted(os.listdir('.')))").stdout
        assert listing == f"{sorted(env.unwrapped.task['files'])}\n"
        assert marker_processes(marker) == []
    finally:
        env.close()
    assert marker_processes(marker) == []


@pytest.mark.parametrize("backend", ["process", "bwrap"])
def test_pooled_worker_keeps_no_state(backend):
    """The same worker serves every call of an episode: a call cannot change what the next call starts from."""
    backend_or_skip(backend)
    env = gym.make("turngym/Coding-v0", sandbox=backend, limits=Limits(wall_s=5))
    try:
        env.reset(options={"task_id": "HumanEval/95"})
        env.step(
            python("import os, sys, unittest\nos.environ['X'] = '1'\nunittest.X = 1\nsys.path.append('/x')")
        )
        obs, *_ = env.step(
            python(
                "import os, sys, unittest\nprint(os.environ.get('X'), hasattr(unittest, 'X'), '/x' in sys.path)"
            )
        )
        assert obs["text"].startswith("None False False"), obs["text"]
    finally:
        env.close()
