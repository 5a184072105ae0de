"""Saving one image's labels over HTTP: the annotator's save round trip.

Usage: .venv/bin/python bench/labels.py [--saves 1000] [--boxes 5] [--runs 1] [--data-dir DIR]
                                        [--profile]

Starts the server (uvicorn, one worker, on a free port, a temp data dir, no task runner, access
log off) in a subprocess, makes a project with one 640x480 image over the API, then times, from
one keep-alive client, one request at a time:
- ``edit``: ``--saves`` PUTs of ``--boxes`` boxes, each sending the version and the label ids
  the previous answer gave, with one box moved (what the annotator sends after a drag);
- ``replace``: as many PUTs of the same number of boxes without ids (every save deletes the
  labels and inserts new ones);
- ``get``: as many GETs of the image's labels;
- ``ping``: as many ``GET /api/v1/csrf`` (no database): the floor of a request on this machine
  (server and client share its CPUs), for reading the others;
- ``edit_in_server``: the ``edit`` saves timed inside the server process (ASGI app call), and
  the server's CPU time per edit save (``edit_server_cpu_ms_per_save``).
Each save commits the rows and rewrites the label file (fsynced) before it answers. 20 untimed
requests warm each up. ``--runs`` repeats it all on a fresh server and data dir and reports the
median of the runs' p50 and p95. Prints JSON (milliseconds); goal for ``edit``: p50 <= 5 ms,
p95 <= 15 ms. ``--profile`` runs the server under cProfile and prints where its time went.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.server import free_port, launch, stop_server  # noqa: E402

PROJECT = "bench"
CLASSES = [f"class{i}" for i in range(10)]
WARMUP = 20
GOAL_P50_MS, GOAL_P95_MS = 5.0, 15.0


def serve(data_dir: Path, port: int) -> None:
    """The app as ``ydc serve`` builds it (the labels API included if not wired yet), wrapped
    to time each request inside the server (from the request's arrival at the app to its
    last byte handed to uvicorn); the times land in ``server_times.json`` at shutdown."""
    import atexit

    import uvicorn

    from app.config import Settings
    from app.main import create_app
    from app.web import api_labels

    settings = Settings(data_dir=data_dir, run_tasks=False)
    app = create_app(settings)
    paths = {getattr(route, "path", None) for route in app.routes}
    if not any(getattr(route, "path", None) in paths for route in api_labels.router.routes):
        app.include_router(api_labels.router)
    times: dict[str, list[float]] = {}

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        await app(scope, receive, send)
        if scope["type"] == "http":
            times.setdefault(scope["method"], []).append(time.perf_counter() - start)

    def dump() -> None:
        (data_dir.parent / "server_times.json").write_text(json.dumps(times))

    atexit.register(dump)
    uvicorn.run(timed, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(data_dir: Path, port: int, profile_to: Path | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", str(data_dir), str(port)]
    if profile_to is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile_to), *command[1:]]
    return launch(command, data_dir.parent / "server.log", port)


def client(base: str) -> httpx.Client:
    """A keep-alive client holding the CSRF cookie and sending its token, as a script should."""
    http = httpx.Client(base_url=base, timeout=60)
    http.headers["X-CSRF-Token"] = http.get("/api/v1/csrf").json()["token"]
    return http


def make_image() -> bytes:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", frame)
    assert ok
    return buf.tobytes()


def setup(http: httpx.Client) -> str:
    """The project with one image; returns the labels URL."""
    http.post("/api/v1/projects", json={"name": PROJECT, "classes": CLASSES}).raise_for_status()
    response = http.post(
        f"/api/v1/projects/{PROJECT}/images",
        files={"files": ("frame.jpg", io.BytesIO(make_image()), "image/jpeg")},
        data={"split": "train"},
    )
    response.raise_for_status()
    (result,) = response.json()["results"]
    assert result["status"] == "stored", result
    return f"/api/v1/projects/{PROJECT}/images/{result['filename']}/labels"


def boxes(n: int, step: int, ids: list[int] | None) -> list[dict[str, Any]]:
    """``n`` boxes in a row; box ``step % n`` moved a little each step."""
    out = []
    for i in range(n):
        x = (i + 0.5) / n
        if i == step % n:
            x += 0.01 * ((step // n) % 3 - 1) / n
        out.append(
            {
                "id": ids[i] if ids else None,
                "class_id": i % len(CLASSES),
                "x": x,
                "y": 0.5,
                "width": 0.5 / n,
                "height": 0.2,
            }
        )
    return out


def figures(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(ms[-1], 2),
    }


def time_saves(http: httpx.Client, url: str, saves: int, n: int, *, with_ids: bool) -> list[float]:
    state = http.get(url).json()
    times: list[float] = []
    for step in range(WARMUP + saves):
        ids = [b["id"] for b in state["labels"]] if with_ids and state["labels"] else None
        body = {"version": state["version"], "labels": boxes(n, step, ids)}
        start = time.perf_counter()
        response = http.put(url, json=body)
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"save {step} answered {response.status_code}: {response.text}")
        state = response.json()
        if step >= WARMUP:
            times.append(elapsed)
    assert len(state["labels"]) == n
    return times


def time_gets(http: httpx.Client, url: str, count: int) -> list[float]:
    """``count`` GETs of ``url`` (after the warm-up)."""
    times: list[float] = []
    for step in range(WARMUP + count):
        start = time.perf_counter()
        http.get(url).raise_for_status()
        if step >= WARMUP:
            times.append(time.perf_counter() - start)
    return times


def one_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    port = free_port()
    profile_to = workdir / "server.prof" if args.profile else None
    server = start_server(data_dir, port, profile_to)
    try:
        http = client(f"http://127.0.0.1:{port}")
        process = psutil.Process(server.pid)
        try:
            url = setup(http)
            cpu_before = sum(process.cpu_times()[:2])
            edit = time_saves(http, url, args.saves, args.boxes, with_ids=True)
            edit_cpu = sum(process.cpu_times()[:2]) - cpu_before
            replace = time_saves(http, url, args.saves, args.boxes, with_ids=False)
            gets = time_gets(http, url, args.saves)
            pings = time_gets(http, "/api/v1/csrf", args.saves)
        finally:
            http.close()
    finally:
        stop_server(server)
    if profile_to is not None and profile_to.exists():
        print_profile(profile_to)
    server_times = json.loads((workdir / "server_times.json").read_text())
    puts = server_times.get("PUT", [])
    return {
        "edit": figures(edit),
        "replace": figures(replace),
        "get": figures(gets),
        "ping": figures(pings),
        # Inside the server: the edit saves' share of the PUTs (after their warm-up).
        "edit_in_server": figures(puts[WARMUP : WARMUP + args.saves]),
        # CPU the server spent per edit save (all its threads, warm-up included): what the
        # save costs without this machine's other load; p50 on an idle machine is about this
        # plus the fsync waits.
        "edit_server_cpu_ms_per_save": round(edit_cpu * 1000 / (WARMUP + args.saves), 2),
    }


def print_profile(path: Path) -> None:
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--boxes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, help="where the temp data dirs go")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
            runs.append(one_run(args, Path(tmp)))
    report: dict[str, Any] = {
        "saves": args.saves,
        "boxes_per_save": args.boxes,
        "runs": args.runs,
        "cpus": os.cpu_count(),
    }
    report["load_average_1m"] = round(os.getloadavg()[0], 2)
    for kind in ("edit", "edit_in_server", "replace", "get", "ping"):
        report[kind] = {
            "p50_ms_median_of_runs": statistics.median(r[kind]["p50_ms"] for r in runs),
            "p95_ms_median_of_runs": statistics.median(r[kind]["p95_ms"] for r in runs),
            "per_run": [r[kind] for r in runs],
        }
    report["edit_server_cpu_ms_per_save"] = statistics.median(
        r["edit_server_cpu_ms_per_save"] for r in runs
    )
    report["goal_p50_5ms"] = report["edit"]["p50_ms_median_of_runs"] <= GOAL_P50_MS
    report["goal_p95_15ms"] = report["edit"]["p95_ms_median_of_runs"] <= GOAL_P95_MS
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    main()
