from __future__ import annotations

import functools
import os
import sys

import pytest

from turngym.sandboxes import available

LOCAL_BACKENDS = ["process", "bwrap", pytest.param("docker", marks=pytest.mark.docker)]


def engine_mode() -> str:
    """How the tests get a docker engine: `$TURNGYM_DOCKER_ENGINE`, "auto" when unset (see docs/sandboxes.md)."""
    return os.environ.get("TURNGYM_DOCKER_ENGINE", "").strip().lower() or "auto"


@functools.cache
def docker_engine() -> tuple[bool, str]:
    """Once per session: a reachable engine ($DOCKER_HOST, the default socket, or the shared one of
    sandboxes/podman_engine.sh), else one of this test process's own started with that script (mode "auto": where it
    can work, i.e. as root with podman or apt-get; "podman": always; "none": never). An engine started here is
    stopped, and its containers removed, when the test process exits."""
    from turngym.sandboxes.docker import engine_can_start, use_engine

    mode = engine_mode()
    if mode != "none" and engine_can_start()[0]:
        print("docker tests: finding or starting a podman engine (the first time on a machine this installs "
              "podman and builds an image: about 2.5 min; TURNGYM_DOCKER_ENGINE=none skips)", file=sys.__stderr__)  # fmt: skip
    return use_engine(start=mode)


def backend_or_skip(name: str) -> str:
    ok, why = docker_engine() if name == "docker" else available(name)
    if not ok:
        if name == "docker" and engine_mode() == "podman":
            pytest.fail(f"TURNGYM_DOCKER_ENGINE=podman but no docker engine could be used: {why}")
        print(f"skipping the {name} sandbox backend: {why}")
        pytest.skip(f"{name} sandbox backend unavailable: {why}")
    return name


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request) -> str:
    return backend_or_skip(request.param)


def pytest_collection_modifyitems(items):
    """Tests that use the `docker_ok` fixture need an engine: mark them `docker` (`-m "not docker"` skips them)."""
    for item in items:
        if "docker_ok" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session", autouse=True)
def no_container_left():
    """After the session: no container that a sandbox of this test process started is left on the engine."""
    yield
    if not docker_engine.cache_info().currsize or not docker_engine()[0]:
        return
    import docker

    client = docker.from_env(timeout=10)
    try:
        left = client.containers.list(all=True, filters={"label": f"turngym.owner={os.getpid()}"})
    finally:
        client.close()
    assert not left, f"the tests left {len(left)} sandbox container(s): {[c.short_id for c in left]}"
