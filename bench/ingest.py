"""Upload throughput over HTTP against the bare work of ingesting the same files.

Usage: .venv/bin/python bench/ingest.py [N_IMAGES] [--clients 4] [--per-request 1,100] [--profile]
(default N 500)

Makes N distinct JPEGs of 640x480 (about 90 KB), starts the server (``ydc serve`` in a
subprocess on a free port, a temp data dir, no task runner) and uploads them over HTTP from
``--clients`` concurrent clients, once with 1 file per request and once with 100 per request
(each into its own project). An image counts once it was answered "stored" and its thumbnail
exists. Then it times the bare work on the same files with as many threads as clients: decode
(EXIF applied), sha256, perceptual hash, thumbnail, fsynced write. Prints JSON: images/s,
request p50/p95, the server's peak RSS per run, the bare images/s and the ratio bare/ingest
(pass: at most 2). ``--profile`` runs the server under cProfile and prints where its time went.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import pstats
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.repositories.imaging import perceptual_hash, thumbnail_of  # noqa: E402
from bench.server import free_port, launch  # noqa: E402

WIDTH, HEIGHT = 640, 480
JPEG_QUALITY = 90


def make_jpegs(n: int) -> list[tuple[str, bytes]]:
    """N different photo-like JPEGs: smooth shapes plus grain, about 90 KB each."""
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        base = cv2.resize(
            rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
            (WIDTH, HEIGHT),
            interpolation=cv2.INTER_CUBIC,
        )
        grain = rng.normal(0, 7, (HEIGHT, WIDTH, 3))
        frame = np.clip(base + grain, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        out.append((f"img{i:05d}.jpg", buf.tobytes()))
    return out


class RssSampler:
    """Samples a process's resident memory every 20 ms; ``peak()`` since the last reset."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._process.memory_info().rss
            except psutil.Error:
                return
            self._peak = max(self._peak, rss)
            time.sleep(0.02)

    def reset(self) -> None:
        self._peak = 0

    def peak_mb(self) -> float:
        return round(self._peak / 2**20, 1)

    def stop(self) -> None:
        self._stop.set()


def start_server(data_dir: Path, port: int, profile_to: Path | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YDC_DATA_DIR": str(data_dir),
        "YDC_PORT": str(port),
        "YDC_RUN_TASKS": "false",
        "YDC_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "app.cli", "serve"]  # what `ydc serve` runs
    if profile_to is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile_to), *command[1:]]
    return launch(command, data_dir.parent / "server.log", port, env)


def client(base: str) -> httpx.Client:
    """A client holding the CSRF cookie and sending its token, as a script should."""
    http = httpx.Client(base_url=base, timeout=600)
    token = http.get("/api/v1/csrf").json()["token"]
    http.headers["X-CSRF-Token"] = token
    return http


def upload_run(
    base: str, project: str, images: list[tuple[str, bytes]], per_request: int, clients: int
) -> dict[str, object]:
    """Upload every image into ``project`` from ``clients`` threads; time it."""
    batches: queue.Queue[list[tuple[str, bytes]]] = queue.Queue()
    for first in range(0, len(images), per_request):
        batches.put(images[first : first + per_request])
    latencies: list[float] = []
    results: list[dict[str, object]] = []
    lock = threading.Lock()
    sessions = [client(base) for _ in range(clients)]

    def work(http: httpx.Client) -> None:
        while True:
            try:
                batch = batches.get_nowait()
            except queue.Empty:
                return
            files = [("files", (name, data, "image/jpeg")) for name, data in batch]
            start = time.perf_counter()
            response = http.post(f"/api/v1/projects/{project}/images", files=files)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            with lock:
                latencies.append(elapsed)
                results.extend(response.json()["results"])

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, sessions))
    wall = time.perf_counter() - start
    for http in sessions:
        http.close()
    return {"wall_s": wall, "latencies": latencies, "results": results}


def bare_work(images: list[tuple[str, bytes]], threads: int, folder: Path) -> tuple[float, float]:
    """The work ingest cannot avoid, on as many threads: images per second, CPU ms per image."""
    folder.mkdir(parents=True, exist_ok=True)

    def one(item: tuple[str, bytes]) -> None:
        name, data = item
        digest = hashlib.sha256(data).hexdigest()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # EXIF applied
        assert image is not None
        perceptual_hash(image)
        thumb = thumbnail_of(image)
        for path, payload in ((folder / name, data), (folder / f"{digest}.jpg", thumb)):
            with open(path, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())

    cpu = cpu_seconds(psutil.Process())
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, images))
    wall = time.perf_counter() - start
    return len(images) / wall, (cpu_seconds(psutil.Process()) - cpu) * 1000 / len(images)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main_thread_cpu_seconds(process: psutil.Process) -> float:
    """CPU time of the process's main thread (the server's event loop)."""
    thread = next(t for t in process.threads() if t.id == process.pid)
    return float(thread.user_time + thread.system_time)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarise(run: dict[str, object], data_dir: Path, project: str, peak_mb: float) -> dict:  # type: ignore[type-arg]
    results = run["results"]
    assert isinstance(results, list)
    thumbs = data_dir / "projects" / project / "thumbs"
    stored = [r for r in results if r["status"] == "stored"]
    images = data_dir / "projects" / project / "images"
    complete = 0
    for r in stored:
        data = (images / r["split"] / r["filename"]).read_bytes()
        if (thumbs / f"{hashlib.sha256(data).hexdigest()}.jpg").is_file():
            complete += 1
    latencies = run["latencies"]
    assert isinstance(latencies, list)
    wall = float(run["wall_s"])  # type: ignore[arg-type]
    return {
        "requests": len(latencies),
        "stored_with_thumbnail": complete,
        "not_stored": len(results) - len(stored),
        "wall_s": round(wall, 2),
        "images_per_s": round(complete / wall, 1),
        "request_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "request_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "server_peak_rss_mb": peak_mb,
    }


def print_profile(path: Path) -> None:
    """The server's event-loop thread (what cProfile sees): own time by package, then the
    functions with the most own time (coroutine "calls" count every resumption)."""
    stats = pstats.Stats(str(path), stream=sys.stderr)
    by_package: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        if "site-packages/" in filename:
            package = filename.split("site-packages/")[1].split("/")[0]
        elif "/app/" in filename:
            package = "app." + filename.split("/app/")[1].split("/")[0].removesuffix(".py")
        elif filename == "~":
            package = f"builtin {function}"
        else:
            package = "stdlib " + Path(filename).stem
        by_package[package] = by_package.get(package, 0.0) + own
    total = sum(by_package.values())
    print(f"main thread: {total:.2f} s profiled", file=sys.stderr)
    for package, own in sorted(by_package.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {own:7.2f} s  {own / total:5.1%}  {package}", file=sys.stderr)
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="cProfile the server")
    parser.add_argument(
        "--per-request",
        default="1,100",
        help="files per request of each run, comma-separated (default 1,100; the pass and "
        "goal lines need both)",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.per_request.split(",")]

    images = make_jpegs(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        profile_to = Path(tmp) / "server.prof" if args.profile else None
        server = start_server(data_dir, port, profile_to)
        sampler = RssSampler(server.pid)
        base = f"http://127.0.0.1:{port}"
        report: dict[str, object] = {
            "images": args.n,
            "image_kb_mean": round(statistics.mean(len(d) for _, d in images) / 1000, 1),
            "clients": args.clients,
            "cpus": os.cpu_count(),
            "server_idle_rss_mb": round(psutil.Process(server.pid).memory_info().rss / 2**20, 1),
        }
        try:
            admin = client(base)
            for project in (f"per{size}" for size in sizes):
                admin.post("/api/v1/projects", json={"name": project}).raise_for_status()
            admin.close()
            server_process = psutil.Process(server.pid)
            for project, per_request in ((f"per{size}", size) for size in sizes):
                sampler.reset()
                server_cpu, bench_cpu = cpu_seconds(server_process), cpu_seconds(psutil.Process())
                loop_cpu = main_thread_cpu_seconds(server_process)
                run = upload_run(base, project, images, per_request, args.clients)
                summary = summarise(run, data_dir, project, sampler.peak_mb())
                stored = max(int(summary["stored_with_thumbnail"]), 1)
                summary["server_cpu_ms_per_image"] = round(
                    (cpu_seconds(server_process) - server_cpu) * 1000 / stored, 2
                )
                # The event loop's own thread: every request passes through it.
                summary["server_loop_thread_cpu_ms_per_image"] = round(
                    (main_thread_cpu_seconds(server_process) - loop_cpu) * 1000 / stored, 2
                )
                summary["client_cpu_ms_per_image"] = round(
                    (cpu_seconds(psutil.Process()) - bench_cpu) * 1000 / stored, 2
                )
                report[f"files_per_request_{per_request}"] = summary
        finally:
            sampler.stop()
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        bare, bare_cpu = bare_work(images, args.clients, Path(tmp) / "bare")
        report["bare_threads"] = args.clients
        report["bare_images_per_s"] = round(bare, 1)
        report["bare_cpu_ms_per_image"] = round(bare_cpu, 2)
        for per_request in sizes:
            run_report = report[f"files_per_request_{per_request}"]
            assert isinstance(run_report, dict)
            report[f"ratio_bare_over_ingest_{per_request}"] = round(
                bare / max(run_report["images_per_s"], 1e-9), 2
            )
        if {1, 100} <= set(sizes):
            report["pass_ingest_within_2x_of_bare"] = all(
                float(report[f"ratio_bare_over_ingest_{p}"]) <= 2  # type: ignore[arg-type]
                for p in (1, 100)
            )
        if 100 in sizes:
            per100 = report["files_per_request_100"]
            assert isinstance(per100, dict)
            report["goal_350_per_s_at_100"] = per100["images_per_s"] >= 350
        report["goal_rss_under_250_mb"] = all(
            report[f"files_per_request_{p}"]["server_peak_rss_mb"] <= 250  # type: ignore[index]
            for p in sizes
        )
        print(json.dumps(report, indent=2))
        if profile_to is not None and profile_to.exists():
            print_profile(profile_to)


if __name__ == "__main__":
    main()
