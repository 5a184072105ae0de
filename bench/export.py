"""Export of a 10,000-image project against ``zip -0 -r`` over the same files.

Usage: .venv/bin/python bench/export.py [--images N] [--runs R] [--keep DIR] [--profile]
(defaults: 10,000 images, 3 runs; ``--images 500`` for a quick check)

1. Writes one project of N JPEGs of about 90 KB (640x480: a few hundred smooth random frames
   with grain, each image one of them shifted by its index, so every file's bytes, sha256 and
   pixels differ) with 1-3 boxes each, as a plain YOLO folder in ydc's layout
   (``projects/bench/images/<split>/``, ``labels/<split>/``, ``data.yaml``; splits 80/10/10),
   and registers it with ``sync_from_disk()`` into an empty database. Its time is printed but
   is part of no goal. ``--keep DIR`` writes the tree under DIR and leaves it there (a later
   run with the same DIR and N reuses it, database and all); without it the tree goes to a
   temp dir that is deleted at the end.
2. Alternately, R times each: the export as the export task runs it
   (``stores.dataset.export(name, outdir, progress=...)``, with a progress callback that
   does nothing) in a child process of its own, and ``zip -0 -r -q out.zip images labels
   data.yaml`` in the project folder (Python's ``zipfile`` with ZIP_STORED in a child
   process where there is no ``zip``: ``"baseline"`` says which). Each archive is written
   fresh into a folder beside the project and deleted after. The export's time is the one
   the child measures around ``export()`` (its imports and start-up are printed apart, as
   ``process_s``); the peak RSS is the child's own, from ``os.wait4`` (the child started by a
   small launcher, so its figure holds nothing of this process's memory; ``VmHWM`` read by
   the export child at its end is printed beside it as a cross-check). Also, as a reference
   that is part of no goal, Python's ``zipfile`` storing the same files in a child process
   (``python_zipfile_stored``): the floor for an export built on ``zipfile``.

Goals (issue 7): the export within 1.5x the ``zip -0`` time (medians), its peak RSS within
300 MB. Page cache warm for both (the tree was just written and read).

``--profile`` runs one more export under cProfile (in the child, the event loop's thread;
``archive.write`` runs in worker threads, so its time shows under ``to_thread`` waits) and
adds the top entries by cumulative time to the JSON.

Prints JSON; times in seconds, sizes in MB.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db.migrate import upgrade_to_head  # noqa: E402
from app.repositories import create_stores  # noqa: E402
from bench.reconcile import CLASSES, label_text  # noqa: E402

PROJECT = "bench"
SPLITS = ("train", "val", "test")
WIDTH, HEIGHT = 640, 480
# Grain and quality giving JPEGs of about 90 KB.
GRAIN, QUALITY = 12, 90
BASES = 300
MARKER = "bench-export.json"
TREE_VERSION = 1
GOAL_RATIO = 1.5
GOAL_RSS_MB = 300.0
TOP_ENTRIES = 25


# --- the tree -----------------------------------------------------------------------------------


def split_of(index: int) -> str:
    """80/10/10 by index."""
    rest = index % 10
    return "train" if rest < 8 else ("val" if rest == 8 else "test")


def plain_data_yaml() -> str:
    raw = {"train": "images/train", "val": "images/val", "test": "images/test", "names": CLASSES}
    return yaml.safe_dump(raw, sort_keys=False)


def base_frame(rng: np.random.Generator) -> np.ndarray:
    """Random 12x16 blocks smoothed up to 640x480, plus grain."""
    smooth = cv2.resize(
        rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
        (WIDTH, HEIGHT),
        interpolation=cv2.INTER_CUBIC,
    )
    grain = rng.integers(-GRAIN, GRAIN + 1, (HEIGHT, WIDTH, 3), dtype=np.int16)
    return np.clip(smooth.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def jpeg(frame: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    assert ok
    return buf.tobytes()


def generate(folder: Path, images: int) -> dict[str, int]:
    """The project folder; how many images, boxes and image bytes it got."""
    for kind in ("images", "labels"):
        for split in SPLITS:
            (folder / kind / split).mkdir(parents=True, exist_ok=True)
    (folder / "data.yaml").write_text(plain_data_yaml(), encoding="utf-8")
    rng = np.random.default_rng(7)
    bases = [base_frame(rng) for _ in range(min(BASES, images))]
    boxes = size = 0
    for i in range(images):
        # Shifting a base by a different amount for each use makes the pixels differ.
        shift = 1 + i // len(bases)
        frame = np.roll(bases[i % len(bases)], (shift, 3 * shift), axis=(0, 1))
        data = jpeg(frame)
        split, stem = split_of(i), f"img_{i:06d}"
        (folder / "images" / split / f"{stem}.jpg").write_bytes(data)
        text, count = label_text(rng)
        (folder / "labels" / split / f"{stem}.txt").write_text(text, encoding="ascii")
        boxes += count
        size += len(data)
    del bases
    return {"images": images, "boxes": boxes, "image_bytes": size}


async def register(data_dir: Path) -> dict[str, Any]:
    """sync-from-disk into an empty database."""
    settings = Settings(data_dir=data_dir, run_tasks=False)
    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    try:
        start = time.perf_counter()
        report = await stores.storage.sync_from_disk()
        return {"sync_s": round(time.perf_counter() - start, 2), "changed": report.changed}
    finally:
        await stores.close()


def prepare_tree(base: Path, images: int) -> dict[str, Any]:
    """Generate and register the tree under ``base``, or reuse the one a previous run kept."""
    data_dir = base / "data"
    marker = base / MARKER
    wanted = {"version": TREE_VERSION, "images": images}
    if marker.is_file():
        kept = json.loads(marker.read_text())
        if {k: kept.get(k) for k in wanted} == wanted:
            # The kept database brought up to this checkout's schema.
            asyncio.run(upgrade_to_head(Settings(data_dir=data_dir, run_tasks=False).database_url))
            return {**kept, "reused": True}
        marker.unlink()
        shutil.rmtree(data_dir, ignore_errors=True)
    elif base.exists() and any(base.iterdir()):
        raise SystemExit(f"{base} is not empty and was not written by this script")
    base.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    totals = generate(data_dir / "projects" / PROJECT, images)
    generate_s = round(time.perf_counter() - start, 2)
    synced = asyncio.run(register(data_dir))
    record = {**wanted, **totals, "generate_s": generate_s, **synced}
    marker.write_text(json.dumps(record))
    return {**record, "reused": False}


# --- the children -------------------------------------------------------------------------------


async def _nothing(fraction: float, message: str) -> None:
    return None


def vm_hwm_mb() -> float | None:
    """This process's peak RSS since its exec (``VmHWM``), in MB: a cross-check."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


async def child_export(data_dir: Path, outdir: Path) -> dict[str, Any]:
    """Runs in the child process: one export as the export task does it."""
    stores = create_stores(Settings(data_dir=data_dir, run_tasks=False))
    try:
        start = time.perf_counter()
        result = await stores.dataset.export(PROJECT, outdir, progress=_nothing)
        seconds = time.perf_counter() - start
    finally:
        await stores.close()
    return {
        "export_s": seconds,
        "vm_hwm_mb": vm_hwm_mb(),
        "images": result.images,
        "labels": result.labels,
        "left_out": {reason: len(names) for reason, names in result.left_out.items()},
        "zip_path": str(result.path),
        "zip_bytes": result.path.stat().st_size,
    }


def child_main(args: argparse.Namespace) -> None:
    data_dir, outdir = Path(args.child_export[0]), Path(args.child_export[1])
    if args.profile:
        profiler = cProfile.Profile()
        out = profiler.runcall(asyncio.run, child_export(data_dir, outdir))
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(TOP_ENTRIES)
        out["profile"] = [line for line in text.getvalue().splitlines() if line.strip()]
    else:
        out = asyncio.run(child_export(data_dir, outdir))
    print(json.dumps(out))


# The baseline where there is no ``zip``: every file stored, in a child process of its own.
STORED_ZIP = """
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", compression=zipfile.ZIP_STORED) as out:
    for name in sys.argv[2:]:
        if os.path.isdir(name):
            for folder, dirs, files in os.walk(name):
                dirs.sort()
                for file in sorted(files):
                    out.write(os.path.join(folder, file))
        else:
            out.write(name)
"""


# Peak RSS from ``wait4`` counts the child's memory before its ``exec`` too, which after a
# fork (or vfork) of this process is this process's own (hundreds of MB). So each child is
# started by a small launcher (a bare interpreter, a few MB) that forks, execs the command,
# waits for it and writes its rusage to the file named first.
LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}, out)
sys.exit(0)
"""


def run_child(command: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (the child's own, from ``wait4`` in the launcher) and its
    stdout."""
    with tempfile.TemporaryDirectory(prefix="ydc-bench-child-") as tmp:
        usage_file = Path(tmp) / "usage.json"
        launcher = [sys.executable, "-S", "-c", LAUNCHER, str(usage_file)]
        with (Path(tmp) / "stderr").open("w+b") as errors:
            start = time.perf_counter()
            done = subprocess.run(
                [*launcher, *command], cwd=cwd, stdout=subprocess.PIPE, stderr=errors
            )
            seconds = time.perf_counter() - start
            usage = json.loads(usage_file.read_text()) if usage_file.is_file() else {}
            if done.returncode != 0 or usage.get("code") != 0:
                errors.seek(0)
                tail = errors.read().decode(errors="replace")[-3000:]
                raise SystemExit(f"{command[:3]} failed ({usage}): {tail}")
    # ru_maxrss is in KiB on Linux.
    return seconds, usage["maxrss_kb"] / 1024, done.stdout.decode()


# --- the run ------------------------------------------------------------------------------------


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def export_once(data_dir: Path, outdir: Path, *, profile: bool = False) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child-export"]
    command += [str(data_dir), str(outdir)]
    if profile:
        command.append("--profile")
    seconds, rss_mb, stdout = run_child(command)
    out: dict[str, Any] = json.loads(stdout)
    out.update(process_s=seconds, rss_mb=rss_mb)
    archive = Path(out["zip_path"])
    with zipfile.ZipFile(archive) as done:
        out["entries"] = len(done.namelist())
    archive.unlink()
    return out


def baseline_once(
    folder: Path, outdir: Path, zip_bin: str | None, *, python: bool = False
) -> tuple[float, float, int]:
    """``zip -0 -r`` over the project's files (or, with ``python`` or no ``zip``, Python's
    ``zipfile`` storing them): seconds, peak RSS in MB, archive bytes."""
    archive = outdir / "baseline.zip"
    archive.unlink(missing_ok=True)
    names = ["images", "labels", "data.yaml"]
    if zip_bin and not python:
        command = [zip_bin, "-0", "-r", "-q", str(archive), *names]
    else:
        command = [sys.executable, "-c", STORED_ZIP, str(archive), *names]
    seconds, rss_mb, _ = run_child(command, cwd=folder)
    size = archive.stat().st_size
    archive.unlink()
    return seconds, rss_mb, size


def bench(data_dir: Path, outdir: Path, runs: int, profile: bool) -> dict[str, Any]:
    folder = data_dir / "projects" / PROJECT
    zip_bin = shutil.which("zip")
    outdir.mkdir(parents=True, exist_ok=True)
    exports: list[dict[str, Any]] = []
    zips: list[tuple[float, float, int]] = []
    pythons: list[float] = []
    for _ in range(runs):
        exports.append(export_once(data_dir, outdir))
        zips.append(baseline_once(folder, outdir, zip_bin))
        if zip_bin:
            pythons.append(baseline_once(folder, outdir, zip_bin, python=True)[0])
    export_s = median([e["export_s"] for e in exports])
    zip_s = median([z[0] for z in zips])
    rss_mb = max(e["rss_mb"] for e in exports)
    last = exports[-1]
    out: dict[str, Any] = {
        "baseline": f"{zip_bin} -0 -r" if zip_bin else "python zipfile ZIP_STORED (no zip)",
        "export": {
            "seconds": export_s,
            "samples": [round(e["export_s"], 3) for e in exports],
            "process_s": median([e["process_s"] for e in exports]),
            "peak_rss_mb": round(rss_mb, 1),
            "rss_samples_mb": [round(e["rss_mb"], 1) for e in exports],
            "vm_hwm_mb_at_end": [
                round(e["vm_hwm_mb"], 1) for e in exports if e["vm_hwm_mb"] is not None
            ],
            "images": last["images"],
            "labels": last["labels"],
            "left_out": last["left_out"],
            "zip_entries": last["entries"],
            "zip_mb": round(last["zip_bytes"] / 2**20, 1),
        },
        "zip": {
            "seconds": zip_s,
            "samples": [round(z[0], 3) for z in zips],
            "peak_rss_mb": round(max(z[1] for z in zips), 1),
            "zip_mb": round(zips[-1][2] / 2**20, 1),
        },
        # A reference, part of no goal: the floor for an export built on ``zipfile``.
        "python_zipfile_stored": {
            "seconds": median(pythons) if pythons else None,
            "samples": [round(p, 3) for p in pythons],
        },
        "ratio_export_over_zip": round(export_s / zip_s, 2),
        "ratio_process_over_zip": round(median([e["process_s"] for e in exports]) / zip_s, 2),
    }
    out["goal_export_within_1_5x_of_zip"] = out["ratio_export_over_zip"] <= GOAL_RATIO
    out["goal_rss_within_300_mb"] = rss_mb <= GOAL_RSS_MB
    if profile:
        profiled = export_once(data_dir, outdir, profile=True)
        out["profile"] = {"export_s": round(profiled["export_s"], 3), "top": profiled["profile"]}
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "images": args.images,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        # Other work on the machine shows here: the figures are wall-clock times.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="ydc-bench-export-") as tmp:
        base = args.keep or Path(tmp)
        tree = prepare_tree(base, args.images)
        data_dir = base / "data"
        out["tree"] = {
            "path": str(base) if args.keep else "temp (deleted)",
            "reused": tree["reused"],
            "generate_s": None if tree["reused"] else tree["generate_s"],
            "sync_s": None if tree["reused"] else tree["sync_s"],
            "boxes": tree["boxes"],
            "image_mb": round(tree["image_bytes"] / 2**20, 1),
            "mean_image_kb": round(tree["image_bytes"] / tree["images"] / 1024, 1),
        }
        try:
            out.update(bench(data_dir, base / "out", args.runs, args.profile))
        finally:
            shutil.rmtree(base / "out", ignore_errors=True)
        out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


# sync-from-disk's hashing pool spawns processes that import this module again (as
# ``__mp_main__``): whatever runs must stay under this guard.
if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--keep", metavar="DIR", type=Path, help="write the tree here and keep it (reused)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one more export")
    parser.add_argument(
        "--child-export", nargs=2, metavar=("DATA_DIR", "OUTDIR"), help=argparse.SUPPRESS
    )
    arguments = parser.parse_args()
    if arguments.child_export:
        child_main(arguments)
    else:
        if arguments.keep is not None:
            arguments.keep = arguments.keep.resolve()
        print(json.dumps(main(arguments), indent=2))
