"""A webhook receiver for tests: a threaded HTTP server on 127.0.0.1 that records each POST and
answers with the statuses it is given, in turn (the last one from then on)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    url: str
    answers: list[int]
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout_s: float = 30) -> list[Received]:
        """The first ``count`` requests, once they have arrived (or what came, at the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received[:count])
            time.sleep(0.02)
        with self.lock:
            return list(self.received)

    async def arrived(self, count: int, timeout_s: float = 30) -> list[Received]:
        """``wait_for`` for async tests: waits without blocking the event loop (where the
        server's sender runs)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received[:count])
            await asyncio.sleep(0.02)
        with self.lock:
            return list(self.received)


@contextmanager
def webhook_receiver(*answers: int, redirect_to: str | None = None) -> Iterator[Receiver]:
    """Serve on a free port of 127.0.0.1 until the block ends."""
    state = Receiver(url="", answers=list(answers or (200,)))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with state.lock:
                state.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.time())
                )
                index = min(len(state.received), len(state.answers)) - 1
                status = state.answers[index]
            self.send_response(status)
            if 300 <= status < 400 and redirect_to:
                self.send_header("Location", redirect_to)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state.url = f"http://127.0.0.1:{port}/hook"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
