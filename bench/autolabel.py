"""Auto-labelling throughput against the bare predict loop it wraps.

Usage: .venv/bin/python bench/autolabel.py [--images 200] [--imgsz 640] [--runs 2]
                                           [--weights PATH] [--data-dir DIR]

Makes a project of ``--images`` generated 640x480 images with 1 to 3 shapes each on a temp data
dir, registers a model (the ``shapes_model`` fixture's weights when the pytest cache holds them,
``.pytest_cache/d/ydc-shapes-model/*/best.pt``; else ``yolo11n.yaml`` built from scratch and
saved: untrained, but it predicts as fast) and, on the CPU, in this process:
- ``autolabel``: the auto-label job itself (``app.tasks.autolabel.autolabel_project``, with a
  stand-in task context), from loading the model to the last batch's suggestions stored, over
  every image (``selection=all``: a run after the first replaces the model's suggestions);
- ``bare``: ``model.predict`` over the same image files in batches of the job's size, the model
  loaded before the clock starts.
Each is run ``--runs`` times, alternating, after one untimed batch of warm-up; the best run of
each counts. Prints JSON: images per second of each and their ratio (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the CPU figure, even on a GPU machine

from app.config import Settings  # noqa: E402
from app.db.migrate import upgrade_to_head  # noqa: E402
from app.repositories import create_stores  # noqa: E402
from app.tasks.autolabel import BATCH, autolabel_project  # noqa: E402
from app.tasks.training import prepare_ultralytics  # noqa: E402
from tests.shapes import CLASSES, draw_shape  # noqa: E402

PROJECT = "bench"
GOAL = 0.8


def frame(seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    """A noisy BGR frame with 1 to 3 shapes."""
    rng = np.random.default_rng(seed)
    canvas = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(40, 160))
        centre = (
            int(rng.integers(side, width - side)),
            int(rng.integers(side, height - side)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw_shape(canvas, int(rng.integers(0, len(CLASSES))), centre, side, colour)  # type: ignore[arg-type]
    return canvas


def weights_file(given: str | None, folder: Path) -> tuple[Path, str]:
    if given:
        return Path(given), "given"
    cached = sorted((ROOT / ".pytest_cache" / "d" / "ydc-shapes-model").glob("*/best.pt"))
    if cached:
        return cached[-1], "shapes_model (cached)"
    from ultralytics import YOLO

    path = folder / "scratch.pt"
    YOLO("yolo11n.yaml").save(str(path))
    return path, "yolo11n.yaml from scratch (untrained)"


async def progress(fraction: float, message: str = "") -> None:
    return None


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--weights")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ydc-bench-autolabel-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp) / "data"
        settings = Settings(data_dir=data_dir, run_tasks=False)
        await upgrade_to_head(settings.database_url)
        stores = create_stores(settings)
        try:
            await asyncio.to_thread(prepare_ultralytics, data_dir)
            weights, source = weights_file(args.weights, Path(tmp))
            await stores.dataset.create(PROJECT, CLASSES)
            paths: list[Path] = []
            for seed in range(args.images):
                info = await stores.image.save(PROJECT, "train", f"f{seed:04d}.jpg", frame(seed))
                paths.append(info.path)
            await stores.model.save("bench-1", weights, "yolo11n.yaml", PROJECT, 1, {})
            await stores.model.set_active("bench-1")
            params = {
                "model": "bench-1",
                "selection": "all",
                "conf": 0.25,
                "iou": 0.7,
                "imgsz": args.imgsz,
            }

            from ultralytics import YOLO

            bare_model = YOLO(str(weights))
            predict = dict(imgsz=args.imgsz, conf=0.25, iou=0.7, device="cpu", verbose=False)
            bare_model.predict([str(p) for p in paths[:BATCH]], **predict)  # warm-up

            def bare() -> float:
                started = time.perf_counter()
                for start in range(0, len(paths), BATCH):
                    bare_model.predict([str(p) for p in paths[start : start + BATCH]], **predict)
                return time.perf_counter() - started

            job_seconds: list[float] = []
            bare_seconds: list[float] = []
            last: dict[str, Any] = {}
            for run in range(args.runs):
                task = _task(run + 1, params)
                ctx = SimpleNamespace(task=task, progress=progress)
                started = time.perf_counter()
                last = await autolabel_project(ctx, stores)  # type: ignore[arg-type]
                job_seconds.append(time.perf_counter() - started)
                bare_seconds.append(await asyncio.to_thread(bare))
        finally:
            await stores.close()
    autolabel_ips = args.images / min(job_seconds)
    bare_ips = args.images / min(bare_seconds)
    return {
        "images": args.images,
        "image_size": "640x480",
        "imgsz": args.imgsz,
        "batch": BATCH,
        "device": "cpu",
        "threads": __import__("torch").get_num_threads(),
        "weights": source,
        "runs": args.runs,
        "autolabel_seconds": [round(s, 3) for s in job_seconds],
        "bare_predict_seconds": [round(s, 3) for s in bare_seconds],
        "autolabel_images_per_second": round(autolabel_ips, 2),
        "bare_predict_images_per_second": round(bare_ips, 2),
        "ratio": round(autolabel_ips / bare_ips, 3),
        "goal_ratio": GOAL,
        "last_run": {
            k: last.get(k)
            for k in ("suggestions_added", "suggestions_replaced", "skipped", "unmatched_classes")
        },
    }


def _task(task_id: int, params: dict[str, Any]) -> Any:
    """A stand-in for the task row: what the job reads."""
    return SimpleNamespace(id=task_id, kind="autolabel", params=params, dataset=PROJECT)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
