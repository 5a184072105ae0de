"""Start-up reconcile and sync-from-disk at scale, against a bare walk of the same tree.

Usage: .venv/bin/python bench/reconcile.py [--images N] [--projects P] [--runs R]
       [--deep-runs D] [--sync-runs S] [--keep DIR] [--profile]
(defaults: 100,000 images over 10 projects, 5 runs, 2 deep runs, 1 sync; ``--images 2000``
for a quick check)

1. Writes N images over P projects as plain YOLO folders in ydc's layout
   (``projects/<name>/images/<split>/*.jpg``, ``labels/<split>/<stem>.txt`` with 1-3 boxes,
   ``data.yaml`` naming the classes; splits 80/10/10): distinct 48x32 JPEGs (smooth random
   shapes plus grain, so their sha256 and perceptual hashes differ). Its time is printed but
   is part of no goal. ``--keep DIR`` writes the tree under DIR and leaves it there; a later
   run with the same DIR, N and P reuses it (removing what ydc added: the database, thumbnails,
   ``ydc.json``, ``prompts.yaml``, ``lost+found``; ``data.yaml`` written plain again).
   Without it the tree goes to a temp dir that is deleted at the end.
2. Times ``sync_from_disk()`` into an empty database and checks it registered every image and
   box (from its report and by counting rows); also the CPU it took in this process and in
   the worker processes it started. With S > 1, the tree is made plain again and the database
   dropped between syncs; the median is reported.
3. One reconcile settles whatever sync left (what it found is printed: after a sync it should
   be nothing). Then, alternately, R times each: the no-drift reconcile
   (``reconcile(exclusive=True)``; each must find no drift) and the bare walk: ``os.scandir``
   of every folder reconcile reads (each project folder, ``images/``, ``labels/``, their
   split folders, ``thumbs/``) and ``DirEntry.stat()`` of every file in them. Medians, and the
   ratio reconcile / walk of the medians. The walk also runs as reconcile's own listing does
   (thumbnails only listed, not stat'ed): ``walk_as_reconcile_s``.
4. ``reconcile(deep=True, exclusive=True)``: D times (every image hashed, every label file
   compared).

Goals (issue 6): reconcile with no drift at most 3x the bare walk; sync-from-disk of 100,000
images within 60 s. All runs are with a warm page cache (the tree was just written or read).

``--profile`` also runs one reconcile and one sync (the tree made plain again, into a second
empty database) under cProfile and prints to stderr where the time went: the event loop's
thread by cumulative time, then the folder scan (``scan_project``, which reconcile runs in a
worker thread) profiled on its own; and adds to the JSON reconcile split into scan, plan and
the rest, with the time the cyclic garbage collector took meanwhile.

Prints JSON; times in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import app.repositories.reconcile as reconcile_module  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db.migrate import upgrade_to_head  # noqa: E402
from app.domain.reconcile import Outcome, ReconcileReport, SyncReport  # noqa: E402
from app.repositories import Stores, create_stores  # noqa: E402

T = TypeVar("T")

SPLITS = ("train", "val", "test")
CLASSES = ["person", "car", "bicycle", "dog", "cat"]
WIDTH, HEIGHT = 48, 32
MARKER = "bench-reconcile.json"
TREE_VERSION = 1
# ydc's own files in a project folder, removed when a kept tree is reused.
YDC_ADDED = ("thumbs", "models", "ydc.json", "prompts.yaml")
GOAL_RATIO = 3.0
GOAL_SYNC_S = 60.0


# --- the tree -----------------------------------------------------------------------------------


def project_names(projects: int) -> list[str]:
    return [f"proj{p:02d}" for p in range(projects)]


def split_of(index: int) -> str:
    """80/10/10 by index."""
    rest = index % 10
    return "train" if rest < 8 else ("val" if rest == 8 else "test")


def plain_data_yaml() -> str:
    """A ``data.yaml`` as people write it (a list of names), not ydc's mirror."""
    raw = {
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": CLASSES,
    }
    return yaml.safe_dump(raw, sort_keys=False)


def jpeg(rng: np.random.Generator) -> bytes:
    """A distinct small JPEG: random 3x4 blocks smoothed up to 48x32, plus grain."""
    base = cv2.resize(
        rng.integers(0, 256, (3, 4, 3), dtype=np.uint8),
        (WIDTH, HEIGHT),
        interpolation=cv2.INTER_CUBIC,
    )
    grain = rng.integers(-12, 13, (HEIGHT, WIDTH, 3), dtype=np.int16)
    frame = np.clip(base.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def label_text(rng: np.random.Generator) -> tuple[str, int]:
    """1-3 boxes, well inside the picture; the text and the number of boxes."""
    boxes = int(rng.integers(1, 4))
    lines = []
    for _ in range(boxes):
        cls = int(rng.integers(0, len(CLASSES)))
        x, y = rng.uniform(0.3, 0.7, 2)
        w, h = rng.uniform(0.05, 0.4, 2)
        lines.append(f"{cls} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines), boxes


def generate(data_dir: Path, images: int, projects: int) -> dict[str, int]:
    """The projects' folders; how many images and boxes each split folder got in total."""
    totals: Counter[str] = Counter()
    per_project = [
        images // projects + (1 if p < images % projects else 0) for p in range(projects)
    ]
    for p, (name, count) in enumerate(zip(project_names(projects), per_project, strict=True)):
        folder = data_dir / "projects" / name
        for kind in ("images", "labels"):
            for split in SPLITS:
                (folder / kind / split).mkdir(parents=True, exist_ok=True)
        (folder / "data.yaml").write_text(plain_data_yaml(), encoding="utf-8")
        rng = np.random.default_rng(1000 + p)
        for i in range(count):
            split = split_of(i)
            stem = f"img_{p:02d}_{i:06d}"
            (folder / "images" / split / f"{stem}.jpg").write_bytes(jpeg(rng))
            text, boxes = label_text(rng)
            (folder / "labels" / split / f"{stem}.txt").write_text(text, encoding="ascii")
            totals["images"] += 1
            totals["boxes"] += boxes
    return dict(totals)


def reset(data_dir: Path, projects: int) -> None:
    """A kept tree as a plain YOLO tree again: no database, nothing ydc added."""
    drop_database(data_dir)
    for name in ("tmp", "exports", "lost+found", "models"):
        shutil.rmtree(data_dir / name, ignore_errors=True)
    for name in project_names(projects):
        folder = data_dir / "projects" / name
        for entry in YDC_ADDED:
            path = folder / entry
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        (folder / "data.yaml").write_text(plain_data_yaml(), encoding="utf-8")


def count_tree(data_dir: Path, projects: int) -> int:
    """Image files in the split folders (to check a kept tree is whole)."""
    total = 0
    for name in project_names(projects):
        for split in SPLITS:
            folder = data_dir / "projects" / name / "images" / split
            if folder.is_dir():
                with os.scandir(folder) as entries:
                    total += sum(1 for _ in entries)
    return total


def prepare_tree(base: Path, images: int, projects: int) -> dict[str, Any]:
    """Generate the tree under ``base`` or reuse the one a previous run kept there."""
    data_dir = base / "data"
    marker = base / MARKER
    wanted = {"version": TREE_VERSION, "images": images, "projects": projects}
    if marker.is_file():
        kept = json.loads(marker.read_text())
        if {k: kept.get(k) for k in wanted} == wanted:
            reset(data_dir, projects)
            if count_tree(data_dir, projects) == images:
                return {"reused": True, "boxes": kept["boxes"], "generate_s": None}
        # Not the tree asked for (or not whole): this script wrote it, so it may go.
        marker.unlink()
        shutil.rmtree(data_dir, ignore_errors=True)
    elif base.exists() and any(base.iterdir()):
        raise SystemExit(f"{base} is not empty and was not written by this script")
    base.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    totals = generate(data_dir, images, projects)
    elapsed = time.perf_counter() - start
    marker.write_text(json.dumps({**wanted, "boxes": totals["boxes"]}))
    return {"reused": False, "boxes": totals["boxes"], "generate_s": round(elapsed, 2)}


def disk_usage_mb(data_dir: Path) -> float:
    total = 0
    for folder, _, files in os.walk(data_dir):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return round(total / 2**20, 1)


# --- the bare walk ------------------------------------------------------------------------------


def bare_walk(data_dir: Path, *, stat_thumbs: bool = True) -> int:
    """``os.scandir`` of every folder reconcile reads, ``DirEntry.stat()`` of every file in
    them (the thumbnails only listed when ``stat_thumbs`` is false, as reconcile does).
    Returns the files seen."""
    seen = 0
    with os.scandir(data_dir / "projects") as entries:
        projects = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    for project in projects:
        with os.scandir(project) as entries:
            for _ in entries:
                pass
        folders = [os.path.join(project, kind) for kind in ("images", "labels")]
        for folder in folders:
            with os.scandir(folder) as entries:
                splits = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
            for split in splits:
                with os.scandir(split) as entries:
                    for entry in entries:
                        entry.stat(follow_symlinks=False)
                        seen += 1
        thumbs = os.path.join(project, "thumbs")
        if os.path.isdir(thumbs):
            with os.scandir(thumbs) as entries:
                for entry in entries:
                    if stat_thumbs:
                        entry.stat(follow_symlinks=False)
                    else:
                        entry.is_file(follow_symlinks=False)
                    seen += 1
    return seen


# --- timing helpers -----------------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    start = time.perf_counter()
    result = await fn()
    return time.perf_counter() - start, result


def children_cpu() -> float:
    """CPU seconds of the child processes that ended (sync's hashing pool, once shut down)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def findings_of(report: ReconcileReport, limit: int = 5) -> dict[str, Any]:
    return {
        "drift": report.drift,
        "counts": dict(report.counts),
        "first": [f"{f.kind}: {f.path} ({f.detail})" for f in report.findings[:limit]],
    }


def rows_in(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        images, missing = db.execute(
            "SELECT count(*), coalesce(sum(missing), 0) FROM image"
        ).fetchone()
        labels = db.execute("SELECT count(*) FROM label").fetchone()[0]
        projects = db.execute("SELECT count(*) FROM project").fetchone()[0]
    return {"projects": projects, "images": images, "missing": missing, "labels": labels}


def sync_summary(report: SyncReport) -> dict[str, Any]:
    by_kind: Counter[str] = Counter()
    for (_, kind, outcome), count in report.counts.items():
        by_kind[f"{kind}_{outcome}"] += count
    skipped = [
        f"{e.project}/{e.kind} {e.name}: {e.reason}"
        for e in report.entries
        if e.outcome == Outcome.SKIPPED
    ][:5]
    return {
        "changed": report.changed,
        "counts": dict(sorted(by_kind.items())),
        "first_skipped": skipped,
    }


# --- the run ------------------------------------------------------------------------------------


def drop_database(data_dir: Path) -> None:
    for path in data_dir.glob("ydc.db*"):
        path.unlink()


async def fresh_stores(data_dir: Path) -> Stores:
    """Stores on an empty, migrated database in ``data_dir`` (any old one removed)."""
    drop_database(data_dir)
    settings = Settings(data_dir=data_dir, run_tasks=False)
    await upgrade_to_head(settings.database_url)
    return create_stores(settings)


async def sync_once(data_dir: Path, images: int, boxes: int) -> tuple[Stores, dict[str, Any]]:
    """One sync into an empty database; the stores on it (open) and what it did."""
    stores = await fresh_stores(data_dir)
    cpu, children = time.process_time(), children_cpu()
    seconds, synced = await timed(lambda: stores.storage.sync_from_disk())
    cpu, children = time.process_time() - cpu, children_cpu() - children
    rows = rows_in(data_dir / "ydc.db")
    return stores, {
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 1),
        "cpu_s": {"this_process": round(cpu, 1), "worker_processes": round(children, 1)},
        **sync_summary(synced),
        "rows": rows,
        "every_image_registered": rows["images"] == images and rows["missing"] == 0,
        "every_box_registered": rows["labels"] == boxes,
    }


async def bench(
    data_dir: Path, images: int, boxes: int, projects: int, runs: int, deep_runs: int, syncs: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    samples: list[float] = []
    for attempt in range(max(1, syncs)):
        if attempt:
            reset(data_dir, projects)
        stores, synced = await sync_once(data_dir, images, boxes)
        samples.append(synced["seconds"])
        if attempt + 1 < syncs:
            await stores.close()
    out["sync"] = {**synced, "seconds": median(samples), "samples": samples}
    out["sync"]["images_per_s"] = round(images / out["sync"]["seconds"], 1)
    try:
        seconds, settle = await timed(lambda: stores.storage.reconcile(exclusive=True))
        out["settle_reconcile"] = {"seconds": round(seconds, 3), **findings_of(settle)}

        reconcile_samples: list[float] = []
        walk_samples: list[float] = []
        walk_as_reconcile_samples: list[float] = []
        drifted: list[dict[str, Any]] = []
        walked = 0
        for _ in range(runs):
            start = time.perf_counter()
            walked = bare_walk(data_dir)
            walk_samples.append(time.perf_counter() - start)
            seconds, report = await timed(lambda: stores.storage.reconcile(exclusive=True))
            reconcile_samples.append(seconds)
            if report.drift or report.images != images:
                drifted.append(findings_of(report))
            start = time.perf_counter()
            bare_walk(data_dir, stat_thumbs=False)
            walk_as_reconcile_samples.append(time.perf_counter() - start)
        reconcile_s, walk_s = median(reconcile_samples), median(walk_samples)
        walk_as_reconcile_s = median(walk_as_reconcile_samples)
        out["reconcile"] = {
            "seconds": reconcile_s,
            "samples": [round(s, 4) for s in reconcile_samples],
            "drift_in_timed_runs": drifted,
        }
        out["walk"] = {
            "seconds": walk_s,
            "samples": [round(s, 4) for s in walk_samples],
            "files": walked,
            "walk_as_reconcile_s": walk_as_reconcile_s,
        }
        out["ratio_reconcile_over_walk"] = round(reconcile_s / walk_s, 2)
        out["ratio_reconcile_over_walk_as_reconcile"] = round(reconcile_s / walk_as_reconcile_s, 2)

        deep_samples: list[float] = []
        deep_drift: list[dict[str, Any]] = []
        for _ in range(deep_runs):
            seconds, report = await timed(
                lambda: stores.storage.reconcile(deep=True, exclusive=True)
            )
            deep_samples.append(seconds)
            if report.drift:
                deep_drift.append(findings_of(report))
        if deep_samples:
            out["deep"] = {
                "seconds": median(deep_samples),
                "samples": [round(s, 3) for s in deep_samples],
                "images_per_s": round(images / statistics.median(deep_samples), 1),
                "drift": deep_drift,
            }
    finally:
        await stores.close()
    out["goal_reconcile_within_3x_of_walk"] = (
        out["ratio_reconcile_over_walk"] <= GOAL_RATIO and not drifted
    )
    out["goal_sync_within_60_s"] = (
        out["sync"]["seconds"] <= GOAL_SYNC_S and out["sync"]["every_image_registered"]
    )
    return out


# --- profiles -----------------------------------------------------------------------------------


def print_stats(title: str, profile: cProfile.Profile, lines: int = 30) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    stats.sort_stats("cumulative").print_stats(lines)
    print(f"\n===== {title} =====", file=sys.stderr)
    print(stream.getvalue(), file=sys.stderr)


@contextmanager
def split_reconcile() -> Iterator[dict[str, float]]:
    """Time what reconcile's worker threads do (the folder scan, the plan) apart from the rest,
    by wrapping the module's two functions for the duration; and the cyclic garbage
    collections that ran meanwhile (in any thread)."""
    spent = {"scan_project": 0.0, "plan_project": 0.0, "gc": 0.0, "gc_collections": 0}
    scan, plan = reconcile_module.scan_project, reconcile_module.plan_project
    gc_started = [0.0]

    def timed_scan(folder: Path) -> Any:
        start = time.perf_counter()
        try:
            return scan(folder)
        finally:
            spent["scan_project"] += time.perf_counter() - start

    def timed_plan(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return plan(*args, **kwargs)
        finally:
            spent["plan_project"] += time.perf_counter() - start

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            spent["gc"] += time.perf_counter() - gc_started[0]
            spent["gc_collections"] += 1

    reconcile_module.scan_project = timed_scan  # type: ignore[assignment]
    reconcile_module.plan_project = timed_plan  # type: ignore[assignment]
    gc.callbacks.append(on_gc)
    try:
        yield spent
    finally:
        gc.callbacks.remove(on_gc)
        reconcile_module.scan_project = scan  # type: ignore[assignment]
        reconcile_module.plan_project = plan  # type: ignore[assignment]


async def profile(data_dir: Path, projects: int) -> dict[str, Any]:
    """Where reconcile's and sync's time goes (stderr); the reconcile split into parts."""
    out: dict[str, Any] = {}
    settings = Settings(data_dir=data_dir, run_tasks=False)
    stores = create_stores(settings)
    try:
        with split_reconcile() as spent:
            seconds, _ = await timed(lambda: stores.storage.reconcile(exclusive=True))
        scan_s, plan_s = spent["scan_project"], spent["plan_project"]
        out["reconcile_parts_s"] = {
            "total": round(seconds, 4),
            "scan_project": round(scan_s, 4),
            "plan_project": round(plan_s, 4),
            "rest (rows query, apply, mirror check, commit)": round(seconds - scan_s - plan_s, 4),
            "of which cyclic gc, anywhere": round(spent["gc"], 4),
            "gc_collections": int(spent["gc_collections"]),
        }
        profiler = cProfile.Profile()
        profiler.enable()
        await stores.storage.reconcile(exclusive=True)
        profiler.disable()
        print_stats("reconcile, event loop thread (cumulative)", profiler)
    finally:
        await stores.close()

    profiler = cProfile.Profile()
    profiler.enable()
    for name in project_names(projects):
        reconcile_module.scan_project(data_dir / "projects" / name)
    profiler.disable()
    print_stats("scan_project of every project, alone (cumulative)", profiler, 15)

    reset(data_dir, projects)
    stores = await fresh_stores(data_dir)
    try:
        profiler = cProfile.Profile()
        profiler.enable()
        start = time.perf_counter()
        await stores.storage.sync_from_disk()
        out["sync_profiled_s"] = round(time.perf_counter() - start, 3)
        profiler.disable()
        print_stats("sync_from_disk, event loop thread (cumulative)", profiler, 40)
    finally:
        await stores.close()
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "images": args.images,
        "projects": args.projects,
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "deep_runs": args.deep_runs,
        "sync_runs": args.sync_runs,
        # Other work on the machine shows here: the figures are wall-clock times.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="ydc-bench-reconcile-") as tmp:
        base = args.keep or Path(tmp)
        tree = prepare_tree(base, args.images, args.projects)
        data_dir = base / "data"
        out["tree"] = {
            "path": str(base) if args.keep else "temp (deleted)",
            "reused": tree["reused"],
            "generate_s": tree["generate_s"],
            "boxes": tree["boxes"],
            "disk_mb": disk_usage_mb(data_dir),
        }
        out.update(
            await bench(
                data_dir,
                args.images,
                tree["boxes"],
                args.projects,
                args.runs,
                args.deep_runs,
                args.sync_runs,
            )
        )
        out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if args.profile:
            out["profile"] = await profile(data_dir, args.projects)
    return out


# sync-from-disk's hashing pool spawns processes that import this module again (as
# ``__mp_main__``): whatever runs must stay under this guard.
if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--deep-runs", type=int, default=2)
    parser.add_argument(
        "--sync-runs", type=int, default=1, help="syncs into an empty database (median)"
    )
    parser.add_argument(
        "--keep", metavar="DIR", type=Path, help="write the tree here and keep it (reused)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile reconcile and sync")
    arguments = parser.parse_args()
    if arguments.keep is not None:
        arguments.keep = arguments.keep.resolve()
    print(json.dumps(asyncio.run(main(arguments)), indent=2))
