from __future__ import annotations

import functools

import pytest

from turngym.sandboxes import available

LOCAL_BACKENDS = ["process", "bwrap", "docker"]


@functools.cache
def docker_engine() -> tuple[bool, str]:
    """Once per session: a reachable engine (DOCKER_HOST, the default socket, or the podman one of
    sandboxes/podman_engine.sh), started with that script only when TURNGYM_DOCKER_ENGINE=podman."""
    from turngym.sandboxes.docker import use_engine

    return use_engine()


def backend_or_skip(name: str) -> str:
    ok, why = docker_engine() if name == "docker" else available(name)
    if not ok:
        print(f"skipping the {name} sandbox backend: {why}")
        pytest.skip(f"{name} sandbox backend unavailable: {why}")
    return name


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request) -> str:
    return backend_or_skip(request.param)
