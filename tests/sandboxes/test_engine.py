"""The podman engine that `use_engine()` starts for a process leaves nothing behind when that process ends.

A child process starts its own engine (sandboxes/podman_engine.sh on a socket of its own), runs code in a docker
sandbox, and leaves that sandbox and one more labelled container running. When it exits, normally or killed with
SIGKILL (no atexit), its podman service, the script's watcher, every conmon and both containers must be gone.
Needs root and podman with the engine's image already built (the docker tests before this one build it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from turngym.errors import ConfigError
from turngym.sandboxes.docker import ENGINE_MODES, ENGINE_SCRIPT, engine_can_start, engine_mode, use_engine

from .conftest import backend_or_skip

CHILD = r"""
import json, os, sys
import docker
from turngym.sandboxes import make_sandbox
from turngym.sandboxes.docker import use_engine

ok, why = use_engine(start=True)
assert ok, why
sb = make_sandbox("docker").start()  # never stopped: the engine's stop removes it
assert sb.run("echo hi").stdout == "hi\n"
client = docker.from_env()
extra = client.containers.run(os.environ["TURNGYM_DOCKER_IMAGE"], ["sleep", "300"], detach=True,
                              network_mode="none", labels={"turngym.sandbox": "1", "turngym.owner": str(os.getpid())})
print(json.dumps({"sock": os.environ["DOCKER_HOST"].removeprefix("unix://"), "containers": [sb.container.id, extra.id]}))
sys.stdout.flush()
if sys.argv[1] == "kill":
    os.kill(os.getpid(), 9)
"""


def engine_processes(sock: str) -> list[str]:
    """Host processes started for the engine on `sock` (they all carry TURNGYM_ENGINE_SOCK=sock in their env)."""
    needle = f"TURNGYM_ENGINE_SOCK={sock}\0".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read():
                    found.append(f"{pid}: {open(f'/proc/{pid}/cmdline', 'rb').read()[:120]!r}")
        except OSError:
            continue
    return found


def containers_left(ids: list[str]) -> list[str]:
    return [i for i in ids if subprocess.run(["podman", "container", "exists", i]).returncode == 0]


@pytest.fixture
def podman_image():
    backend_or_skip("docker")
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.skip("needs root and podman (the engine under test is podman_engine.sh's)")
    image = os.environ.get("TURNGYM_DOCKER_IMAGE", "")
    if subprocess.run(["podman", "image", "exists", image]).returncode != 0:
        pytest.skip(f"the docker tests run on another engine (image {image!r} is not in podman's storage)")
    return image


@pytest.mark.docker
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_own_engine_leaves_nothing(how, podman_image, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "TURNGYM_DOCKER_ENGINE")}
    env.update(TURNGYM_ENGINE_DIR=str(tmp_path), TURNGYM_DOCKER_IMAGE=podman_image)  # not the shared engine
    r = subprocess.run(
        [sys.executable, "-c", CHILD, how], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == (-signal.SIGKILL if how == "kill" else 0), r.stderr[-2000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    sock, ids = info["sock"], info["containers"]
    assert sock.startswith(str(tmp_path)) and len(ids) == 2
    deadline = time.monotonic() + 30  # killed: the watcher notices within a second, then stops in a few
    while time.monotonic() < deadline and (engine_processes(sock) or containers_left(ids)):
        time.sleep(0.5)
    assert engine_processes(sock) == [], "processes of the engine survived"
    assert containers_left(ids) == [], "containers survived their engine"
    base = sock.removesuffix(".sock")
    assert [p for p in (sock, base + ".pid", base + ".watch", base + ".log") if os.path.exists(p)] == []


def test_engine_settings_are_checked(monkeypatch):
    monkeypatch.setenv("TURNGYM_DOCKER_ENGINE", "dockr")
    with pytest.raises(ConfigError, match="TURNGYM_DOCKER_ENGINE must be one of"):
        engine_mode()
    with pytest.raises(ConfigError, match="use_engine"):
        use_engine(start="yes")
    monkeypatch.setenv("TURNGYM_DOCKER_ENGINE", "None ")
    assert engine_mode() == "none" and "none" in ENGINE_MODES
    ok, why = engine_can_start()
    assert ok or "root" in why or "apt-get" in why


def test_script_refuses_bad_input(tmp_path):
    script = str(ENGINE_SCRIPT)
    r = subprocess.run(["bash", script, "restart"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    if os.geteuid() == 0:
        env = {**os.environ, "TURNGYM_ENGINE_DIR": str(tmp_path), "TURNGYM_ENGINE_OWNER": "12; rm -rf /"}
        r = subprocess.run(["bash", script, "stop"], capture_output=True, text=True, env=env)
        assert r.returncode == 2 and "must be a pid" in r.stderr
