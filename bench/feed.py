"""The live view of a stream feed: how many frames a second it delivers with the model, and what
one feed costs the web server and the worker in CPU.

Usage: .venv/bin/python bench/feed.py [--seconds 20] [--imgsz 320] [--rate 30] [--fps 25]
                                      [--weights PATH]

1. Serves an MJPEG stream on 127.0.0.1 (``tests/feed_stream.py``): 640x480 frames of shapes on
   noise at ``--fps``, a new scene every second.
2. Makes a fresh data dir with a project and an active model (the ``shapes_model`` fixture's
   weights when the pytest cache holds them, ``.pytest_cache/d/ydc-shapes-model/*/best.pt``;
   else ``yolo11n.yaml`` built from scratch and saved: untrained, but it predicts as fast), and
   starts ``ydc serve`` on it (its task runner on), on the CPU (``CUDA_VISIBLE_DEVICES=``).
3. Opens a feed on the stream with the live view on at ``--imgsz``, at most ``--rate``
   inferences a second (30: as fast as the worker goes).
4. Once the model is loaded, measures the server's CPU for 10 s with nobody watching, then
   starts the viewer and measures for ``--seconds``: inferences delivered a second (from the
   worker's status), the camera's frame rate as read, and the CPU time (utime + stime from
   /proc/<pid>/stat) of the server process and of the feed's worker process over the window, as
   a share of one core. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import free_port, launch, stop_server  # noqa: E402
from tests.feed_stream import mjpeg_stream  # noqa: E402
from tests.shapes import CLASSES, draw_shape  # noqa: E402

PROJECT = "bench"
TICKS = os.sysconf("SC_CLK_TCK")


def scene(number: int, width: int = 640, height: int = 480) -> np.ndarray:
    rng = np.random.default_rng(number)
    canvas = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(60, 160))
        centre = (int(rng.integers(side, width - side)), int(rng.integers(side, height - side)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw_shape(canvas, int(rng.integers(0, len(CLASSES))), centre, side, colour)  # type: ignore[arg-type]
    return canvas


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def weights_file(given: str | None, folder: Path) -> tuple[Path, str]:
    if given:
        return Path(given), "given"
    cached = sorted((ROOT / ".pytest_cache" / "d" / "ydc-shapes-model").glob("*/best.pt"))
    if cached:
        return cached[-1], "shapes_model (cached)"
    import subprocess

    path = folder / "scratch.pt"
    script = f"from ultralytics import YOLO; YOLO('yolo11n.yaml').save({str(path)!r})"
    subprocess.run(
        [sys.executable, "-c", script], check=True, env={**os.environ, "YOLO_OFFLINE": "1"}
    )
    return path, "yolo11n.yaml from scratch (untrained)"


async def seed(data_dir: Path, weights: Path) -> None:
    from app.config import Settings
    from app.db.migrate import upgrade_to_head
    from app.repositories import create_stores

    settings = Settings(data_dir=data_dir)
    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    try:
        await stores.dataset.create(PROJECT, list(CLASSES))
        await stores.model.save("bench-live", weights, "yolo11n.yaml", PROJECT, 1, {})
        await stores.model.set_active("bench-live")
    finally:
        await stores.close()


def viewer(base: str, session_id: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """What the feed page does: the live frame again as soon as it came (10 a second at most),
    the status panel every second."""
    with httpx.Client(base_url=base, timeout=10) as http:
        last_status = 0.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = http.get(
                    f"/sessions/{session_id}/feed/frame.jpg", params={"view": "live"}
                )
                counts["frames"] += response.status_code == 200
                if started - last_status >= 1.0:
                    http.get(f"/sessions/{session_id}/feed", headers={"HX-Request": "true"})
                    counts["panels"] += 1
                    last_status = started
            except httpx.HTTPError:
                counts["errors"] += 1
            stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--weights")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="ydc-bench-feed-") as tmp,
        mjpeg_stream(scene, fps=args.fps, scene_s=1.0) as stream,
    ):
        data_dir = Path(tmp) / "data"
        weights, weights_kind = weights_file(args.weights, Path(tmp))
        asyncio.run(seed(data_dir, weights))
        port = free_port()
        env = {
            **os.environ,
            "YDC_DATA_DIR": str(data_dir),
            "YDC_PORT": str(port),
            "YDC_LOG_LEVEL": "WARNING",
            "CUDA_VISIBLE_DEVICES": "",
        }
        server = launch(
            [str(ROOT / ".venv" / "bin" / "ydc"), "serve"], Path(tmp) / "log", port, env
        )
        base = f"http://127.0.0.1:{port}"
        stop = threading.Event()
        try:
            with httpx.Client(base_url=base, timeout=30) as http:
                http.headers["X-CSRF-Token"] = http.get("/api/v1/csrf").json()["token"]
                started = http.post(
                    f"/api/v1/projects/{PROJECT}/sessions/stream",
                    json={
                        "source": stream.url,
                        "live": True,
                        "live_rate": args.rate,
                        "imgsz": args.imgsz,
                    },
                )
                started.raise_for_status()
                session_id = started.json()["session"]["id"]
                status_path = data_dir / "feeds" / str(session_id) / "status.json"

                def status() -> dict[str, Any]:
                    try:
                        return json.loads(status_path.read_text())  # type: ignore[no-any-return]
                    except (OSError, ValueError):
                        return {}

                deadline = time.monotonic() + 180
                while (status().get("live") or {}).get("inferences", 0) < 3:
                    assert time.monotonic() < deadline, f"the live view never ran: {status()}"
                    time.sleep(0.2)
                worker_pid = int(status()["worker_pid"])
                # The feed running with nobody watching: what the server spends on its own.
                quiet = min(10.0, args.seconds)
                idle0, quiet0 = cpu_seconds(server.pid), time.monotonic()
                time.sleep(quiet)
                idle_share = (cpu_seconds(server.pid) - idle0) / (time.monotonic() - quiet0)
                counts = {"frames": 0, "panels": 0, "errors": 0}
                # A viewer like the feed page: the live frame asked for again as soon as the
                # last one came (10 a second at most), the status panel every second.
                watcher = threading.Thread(
                    target=viewer, args=(base, session_id, stop, counts), daemon=True
                )
                watcher.start()
                time.sleep(1.0)  # the viewer's first requests out of the window
                before = status()
                cpu0 = (cpu_seconds(server.pid), cpu_seconds(worker_pid))
                frames0, wall0 = counts["frames"], time.monotonic()
                time.sleep(args.seconds)
                after = status()
                cpu1 = (cpu_seconds(server.pid), cpu_seconds(worker_pid))
                frames1, wall = counts["frames"], time.monotonic() - wall0
                stop.set()
                watcher.join(timeout=10)
                http.post(f"/api/v1/sessions/{session_id}/feed/end").raise_for_status()
        finally:
            stop.set()
            stop_server(server)

    inferences = after["live"]["inferences"] - before["live"]["inferences"]
    result = {
        "weights": weights_kind,
        "imgsz": args.imgsz,
        "rate_limit_per_s": args.rate,
        "stream": {"width": after.get("width"), "height": after.get("height"), "fps": args.fps},
        "seconds": round(wall, 1),
        "live_frames_per_s": round(inferences / wall, 2),
        "inference_ms_last": after["live"].get("inference_ms"),
        "camera_fps_read": after.get("fps"),
        "viewer_frames_per_s": round((frames1 - frames0) / wall, 2),
        "viewer_errors": counts["errors"],
        "server_cpu_percent_of_one_core": round(100 * (cpu1[0] - cpu0[0]) / wall, 1),
        "server_cpu_percent_without_viewer": round(100 * idle_share, 1),
        "worker_cpu_percent_of_one_core": round(100 * (cpu1[1] - cpu0[1]) / wall, 1),
        "cores": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
