"""Shared by the HTTP benchmarks: a free port, a server subprocess started and waited for, and
stopped cleanly (so ``cProfile`` writes its file)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    command: list[str], log_path: Path, port: int, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in the checkout, its output in ``log_path``, and wait (60 s at most)
    until it answers ``GET /api/v1/csrf`` on ``port``."""
    log = open(log_path, "wb")  # noqa: SIM115  (the server keeps it)
    server = subprocess.Popen(
        command, cwd=ROOT, env=dict(env) if env else None, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_bytes()[-2000:].decode(errors="replace")
            raise RuntimeError(f"server exited: {tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/csrf", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("server did not start within 60 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly; cProfile writes its file
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
