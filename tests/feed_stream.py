"""A tiny MJPEG stream for the feed tests and ``bench/feed.py``: a threaded HTTP server on
127.0.0.1 that answers every GET with ``multipart/x-mixed-replace`` JPEG frames made by a
function of the scene number (a new scene every ``scene_s`` seconds, so near-duplicate skipping
does not eat them), and that can be taken down (open connections closed, new ones answered 503)
and brought back on the same port. It counts the connections open now and ever made.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "ydcframe"

Scene = Callable[[int], np.ndarray]  # scene number (from 0) -> BGR frame


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: MjpegStream


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        stream = self.server.owner
        if not stream.serving:
            self.send_error(503, "the stream is down")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        stream.opened(+1)
        try:
            while stream.serving and not stream.stopped:
                data = stream.current_jpeg()
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
                self.wfile.flush()
                time.sleep(1.0 / stream.fps)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            stream.opened(-1)
            self.close_connection = True


class MjpegStream:
    """``scene(n)`` served as MJPEG at ``fps``, scene ``n`` = seconds since start / ``scene_s``
    (``scene_s`` ``None``: always scene 0)."""

    def __init__(self, scene: Scene, *, fps: float = 15.0, scene_s: float | None = None) -> None:
        self.scene = scene
        self.fps = fps
        self.scene_s = scene_s
        self.serving = True
        self.stopped = False
        self.active = 0  # connections streaming now
        self.connections = 0  # streaming connections ever opened
        self._lock = threading.Lock()
        self._cache: dict[int, bytes] = {}
        self._started = time.monotonic()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mjpeg-test-stream", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/stream.mjpg"

    def start(self) -> MjpegStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped = True
        self._server.shutdown()
        self._server.server_close()

    def down(self) -> None:
        """Drop the stream: open connections end, new ones are answered 503."""
        self.serving = False

    def up(self) -> None:
        self.serving = True

    def opened(self, step: int) -> None:
        with self._lock:
            self.active += step
            if step > 0:
                self.connections += 1

    def scene_number(self) -> int:
        if self.scene_s is None:
            return 0
        return int((time.monotonic() - self._started) / self.scene_s)

    def current_jpeg(self) -> bytes:
        number = self.scene_number()
        with self._lock:
            data = self._cache.get(number)
        if data is None:
            ok, encoded = cv2.imencode(".jpg", self.scene(number), [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            data = encoded.tobytes()
            with self._lock:
                self._cache = {number: data}  # only the current scene is kept
        return data


@contextlib.contextmanager
def mjpeg_stream(scene: Scene, **kw: float | None) -> Iterator[MjpegStream]:
    """An ``MjpegStream`` started for the ``with`` block and stopped after it."""
    stream = MjpegStream(scene, **kw).start()  # type: ignore[arg-type]
    try:
        yield stream
    finally:
        stream.stop()
