"""Building a dataset version against the bare OpenCV work of the same images.

Usage: .venv/bin/python bench/version.py [--images N] [--outputs K] [--runs R]
(defaults: 1,000 images, 3 augmented copies each, 3 runs; ``--images 100`` for a quick check)

1. Writes N synthetic 640x480 JPEGs (smooth colour fields with grain and a few filled
   rectangles, each different) with 1-3 boxes each into a temp folder, 80/10/10 train/val/test.
2. Alternately, R times each, into a fresh folder on the same file system:
   - ``version``: ``app.tasks.version_build.build_folder`` with a recipe of K augmented copies
     per train image (horizontal flip, 90° turns, rotation up to 10°, brightness and contrast
     0.2, blur up to sigma 1, noise up to 5 levels, grayscale 0.2; auto-orient on, no resize or
     tiles): the originals hard-linked, the copies decoded, augmented with their boxes moved,
     encoded (JPEG 95) and written with their label files, counts kept, ``data.yaml``.
   - ``bare_opencv``: the same images, each linked, and for train images decoded once and
     K times given the same operations (the same drawn parameters) with plain OpenCV calls
     (``cv2.flip``, ``cv2.rotate``, ``cv2.warpAffine``, ``cv2.convertScaleAbs``,
     ``cv2.GaussianBlur``, ``cv2.randn`` + ``cv2.add``, ``cv2.cvtColor``), encoded (JPEG 95)
     and written: no boxes, no label files, no EXIF look, no counts, no event loop.
   Both in this process, OpenCV on one thread, page cache warm; they take turns going first.

Prints JSON: per run and as medians, seconds, images written a second (links and new files,
the version's own count) and the version's time over the bare work's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.domain.box_geometry import YoloBox  # noqa: E402
from app.domain.versions import (  # noqa: E402
    Recipe,
    SourceImage,
    plan_augmentation,
    validate_recipe,
)
from app.tasks.version_build import JPEG_QUALITY, build_folder  # noqa: E402
from app.tasks.version_pixels import PAD_VALUE, QUARTER_TURNS  # noqa: E402

WIDTH, HEIGHT = 640, 480


def recipe_of(outputs: int) -> Recipe:
    return validate_recipe(
        {
            "seed": 11,
            "augmentation": {
                "outputs": outputs,
                "flip_horizontal": True,
                "rotate90": True,
                "rotation": 10.0,
                "brightness": 0.2,
                "contrast": 0.2,
                "blur": 1.0,
                "noise": 5.0,
                "grayscale": 0.2,
            },
        }
    )


def make_sources(folder: Path, count: int) -> list[SourceImage]:
    """N distinct JPEGs with boxes, split 80/10/10 by index."""
    rng = np.random.default_rng(5)
    fields = [
        cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (WIDTH, HEIGHT))
        for _ in range(16)
    ]
    sources = []
    for n in range(count):
        image = np.roll(fields[n % len(fields)], n * 7, axis=1).copy()
        grain = rng.integers(-12, 13, image.shape, dtype=np.int16)
        image = np.clip(image.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            w, h = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)
            x, y = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            left, top = int((x - w / 2) * WIDTH), int((y - h / 2) * HEIGHT)
            right, bottom = int((x + w / 2) * WIDTH), int((y + h / 2) * HEIGHT)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(image, (left, top), (right, bottom), colour, -1)
            boxes.append(YoloBox(int(rng.integers(0, 3)), x, y, w, h))
        path = folder / f"img{n:05d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        path.write_bytes(buf.tobytes())
        split = "val" if n % 10 == 8 else "test" if n % 10 == 9 else "train"
        digest = f"{n:064x}"  # stands for the sha256 (the plan only needs a stable key)
        sources.append(SourceImage("bench", path.stem, ".jpg", path, split, digest, boxes))
    return sources


async def _nothing(_fraction: float, _message: str) -> None:
    return None


def run_version(out: Path, sources: list[SourceImage], recipe: Recipe) -> tuple[float, int]:
    started = time.perf_counter()
    counts = asyncio.run(
        build_folder(out, ["a", "b", "c"], sources, len(sources), recipe, _nothing)
    )
    seconds = time.perf_counter() - started
    return seconds, counts.linked + counts.written


def bare_copy(image: np.ndarray, step: Any) -> np.ndarray:
    """The same operations with the plainest OpenCV calls, no boxes."""
    if step.quarter_turns % 4:
        image = cv2.rotate(image, QUARTER_TURNS[step.quarter_turns % 4])
    if step.flip_horizontal:
        image = cv2.flip(image, 1)
    if step.flip_vertical:
        image = cv2.flip(image, 0)
    if step.degrees:
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), step.degrees, 1.0)
        image = cv2.warpAffine(
            image, matrix, (width, height), borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE)
        )
    if step.brightness or step.contrast != 1.0:
        beta = 127.5 * (1 - step.contrast) + step.brightness
        image = cv2.convertScaleAbs(image, alpha=step.contrast, beta=beta)
    if step.blur_sigma >= 0.1:
        image = cv2.GaussianBlur(image, (0, 0), step.blur_sigma)
    if step.noise_std > 0:
        noise = np.empty(image.shape, np.int16)
        cv2.setRNGSeed(step.noise_seed % 2**31)
        cv2.randn(noise, 0, step.noise_std)
        image = cv2.add(image, noise, dtype=cv2.CV_8U)
    if step.grayscale:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return image


def run_bare(out: Path, sources: list[SourceImage], recipe: Recipe) -> tuple[float, int]:
    started = time.perf_counter()
    written = 0
    for split in ("train", "val", "test"):
        (out / split).mkdir(parents=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    for source in sources:
        os.link(source.path, out / source.split / f"{source.stem}.jpg")
        written += 1
        if source.split != "train":
            continue
        image = cv2.imdecode(np.fromfile(source.path, np.uint8), cv2.IMREAD_COLOR)
        for copy in range(recipe.augmentation.outputs):
            step = plan_augmentation(recipe, source.sha256, copy)
            ok, buf = cv2.imencode(".jpg", bare_copy(image, step), params)
            assert ok
            (out / source.split / f"{source.stem}_aug{copy + 1}.jpg").write_bytes(buf.tobytes())
            written += 1
    return time.perf_counter() - started, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--outputs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # both sides alike; the machine is shared
    recipe = recipe_of(args.outputs)
    with tempfile.TemporaryDirectory(prefix="ydc-bench-version-") as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        started = time.perf_counter()
        sources = make_sources(root / "src", args.images)
        setup_s = time.perf_counter() - started
        runs: dict[str, list[dict[str, float]]] = {"version": [], "bare_opencv": []}
        for run in range(args.runs):
            order = [("version", run_version), ("bare_opencv", run_bare)]
            for kind, fn in order if run % 2 == 0 else order[::-1]:  # neither always first
                out = root / f"{kind}-{run}"
                seconds, written = fn(out, sources, recipe)
                runs[kind].append(
                    {
                        "s": round(seconds, 3),
                        "written": written,
                        "per_s": round(written / seconds, 1),
                    }
                )
                shutil.rmtree(out)
        medians = {
            kind: {
                "s": statistics.median(r["s"] for r in rows),
                "written": rows[0]["written"],
                "images_per_s": statistics.median(r["per_s"] for r in rows),
            }
            for kind, rows in runs.items()
        }
        result = {
            "images": args.images,
            "outputs_per_train_image": args.outputs,
            "train_images": sum(s.split == "train" for s in sources),
            "setup_s": round(setup_s, 2),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "runs": runs,
            "median": medians,
            "version_over_bare": round(medians["version"]["s"] / medians["bare_opencv"]["s"], 2),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
