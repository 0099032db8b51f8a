"""Shared fixtures for the web envs: one MiniWoB HTTP server for the whole test session.

Each env runs its Chromium on its own browser thread (started at its first reset, stopped by close()), so tests
that count processes (no-leak, crash recovery) see only their env's browser.
"""

from __future__ import annotations

import pytest

from turngym.envs.web.browser import BrowserConfig
from turngym.optional import is_available

needs_browser = pytest.mark.skipif(
    not (is_available("playwright") and is_available("miniwob") and BrowserConfig().resolved_executable()),
    reason="needs playwright, miniwob and Debian chromium (pip install 'turngym[web]'; apt-get install chromium)",
)


@pytest.fixture(scope="session")
def shared_browser():
    if not (is_available("playwright") and is_available("miniwob")):
        pytest.skip("needs playwright and miniwob")
    from turngym.envs.web.miniwob import miniwob_html_root
    from turngym.envs.web.server import acquire_server, release_server

    server = acquire_server(miniwob_html_root())
    yield server
    release_server(server)
