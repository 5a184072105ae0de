"""Debian's Chromium for Playwright, and the app served by uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.e2e.support import LiveServer, LoopCapture

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The webcam page: Chromium's fake camera (a moving test pattern), allowed without asking.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Playwright's own browser download does not work here: use Debian's Chromium."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app (with its task runner) on a free port of 127.0.0.1."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("e2e") / "data", run_tasks=True, log_level="WARNING"
    )
    app = create_app(settings)
    wrapped = LoopCapture(app)
    server = uvicorn.Server(uvicorn.Config(wrapped, log_level="warning", interface="asgi3"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="e2e-uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started serving"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.05)
        assert wrapped.loop is not None, "the lifespan never ran"
        yield LiveServer(f"http://{host}:{port}", app, wrapped.loop, settings.data_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not shut down within 30 s"


@pytest.fixture(scope="session")
def live_server(live: LiveServer) -> str:
    """The live server's base URL."""
    return live.url


@pytest.fixture(scope="session")
def base_url(live_server: str) -> str:
    """pytest-playwright opens relative URLs (``page.goto("/")``) against the live server."""
    return live_server
