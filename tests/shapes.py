"""A model that really detects, for tests: synthetic shapes and the ``shapes_model`` fixture.

The generator draws filled circles, squares and triangles in random colours, sizes and places on
noisy backgrounds, with exact YOLO boxes. The session fixture ``shapes_model`` writes a small
dataset of them and trains ``yolo11n.yaml`` from scratch on it with the recipe that learns (see
ENVIRONMENT.md), in a child process: the pytest process never imports torch. The trained weights
are cached under the pytest cache, keyed by the recipe, the generator's version and Ultralytics'
version, so only a clean checkout (CI) pays the minute of training.

Registered for the whole suite as a plugin by ``tests/conftest.py``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

CLASSES = ["circle", "square", "triangle"]
IMGSZ = 128
TRAIN_IMAGES = 128
VAL_IMAGES = 32
# Bump when the drawings change: the cached weights were trained on the old ones.
GENERATOR_VERSION = 1

# The recipe of ENVIRONMENT.md that learns from scratch, plus ``nbs`` = ``batch``: Ultralytics
# otherwise accumulates gradients up to a nominal batch of 64, which leaves 64 images one
# optimizer step an epoch (mAP50 0.06 after 40 epochs; 0.66 with a step every batch, 0.85 on
# 128 images in 30 epochs).
RECIPE: dict[str, object] = {
    "model": "yolo11n.yaml",
    "pretrained": False,
    "epochs": 40,
    "nbs": 4,
    "imgsz": IMGSZ,
    "batch": 4,
    "optimizer": "AdamW",
    "lr0": 0.003,
    "warmup_epochs": 1,
    "mosaic": 0.0,
    "device": "cpu",
    "workers": 0,
    "amp": False,
    "plots": False,
    "seed": 0,
    "deterministic": True,
}

Box = tuple[int, float, float, float, float]  # class, centre x, centre y, width, height


# --- the drawings ---------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A BGR canvas: a random base colour, a soft gradient and per-pixel noise."""
    base = rng.integers(0, 256, size=3).astype(np.float32)
    ramp = np.linspace(-30.0, 30.0, size, dtype=np.float32)
    gradient = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
    noise = rng.normal(0.0, 18.0, size=(size, size, 3)).astype(np.float32)
    return np.clip(base + gradient + noise, 0, 255).astype(np.uint8)


def _contrasting_colour(rng: np.random.Generator, canvas: np.ndarray) -> tuple[int, int, int]:
    """A colour far enough from the canvas's mean that the shape stands out."""
    mean = canvas.reshape(-1, 3).mean(axis=0)
    for _ in range(100):
        colour = rng.integers(0, 256, size=3)
        if np.abs(colour - mean).sum() >= 150:
            break
    return int(colour[0]), int(colour[1]), int(colour[2])


def draw_shape(
    canvas: np.ndarray,
    class_id: int,
    centre: tuple[int, int],
    side: int,
    colour: tuple[int, int, int],
) -> Box:
    """Draw one filled shape of ``side`` pixels around ``centre``; its exact normalised box."""
    height, width = canvas.shape[:2]
    cx, cy = centre
    half = side // 2
    x0, y0, x1, y1 = cx - half, cy - half, cx - half + side, cy - half + side
    name = CLASSES[class_id]
    if name == "circle":
        cv2.circle(canvas, (cx, cy), half, colour, thickness=-1, lineType=cv2.LINE_AA)
        x0, y0, x1, y1 = cx - half, cy - half, cx + half + 1, cy + half + 1
    elif name == "square":
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), colour, thickness=-1)
    else:  # an upright triangle filling its box
        points = np.array([[cx, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], dtype=np.int32)
        cv2.fillPoly(canvas, [points], colour, lineType=cv2.LINE_AA)
    return (
        class_id,
        (x0 + x1) / 2 / width,
        (y0 + y1) / 2 / height,
        (x1 - x0) / width,
        (y1 - y0) / height,
    )


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], margin: int) -> bool:
    return not (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )


def shapes_image(
    seed: int, *, size: int = IMGSZ, classes: list[int] | None = None, side: int | None = None
) -> tuple[np.ndarray, list[Box]]:
    """A noisy BGR image with 1 to 3 shapes that do not touch (``classes`` picks them, one each;
    ``side`` fixes their size in pixels) and their boxes. The same seed gives the same image."""
    side_wanted = side
    rng = np.random.default_rng(seed)
    canvas = _background(rng, size)
    wanted = (
        classes if classes is not None else list(rng.integers(0, len(CLASSES), rng.integers(1, 4)))
    )
    placed: list[tuple[int, int, int, int]] = []
    boxes: list[Box] = []
    for class_id in wanted:
        for _ in range(50):
            drawn = int(rng.integers(size // 6, size // 2 - 8))
            side = drawn if side_wanted is None else side_wanted
            cx = int(rng.integers(side // 2 + 2, size - side // 2 - 2))
            cy = int(rng.integers(side // 2 + 2, size - side // 2 - 2))
            extent = (cx - side // 2, cy - side // 2, cx + side // 2 + 1, cy + side // 2 + 1)
            if not any(_overlaps(extent, other, 4) for other in placed):
                break
        else:
            continue  # no room left: fewer shapes in this one
        placed.append(extent)
        colour = _contrasting_colour(rng, canvas)
        boxes.append(draw_shape(canvas, int(class_id), (cx, cy), side, colour))
    return canvas, boxes


def write_dataset(folder: Path, *, train: int = TRAIN_IMAGES, val: int = VAL_IMAGES) -> Path:
    """An Ultralytics dataset of shapes in ``folder`` (images, labels, data.yaml); the yaml."""
    seeds = {"train": range(train), "val": range(100_000, 100_000 + val)}
    for split, split_seeds in seeds.items():
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for seed in split_seeds:
            image, boxes = shapes_image(seed)
            stem = f"shapes-{seed:06d}"
            ok = cv2.imwrite(str(folder / "images" / split / f"{stem}.png"), image)
            assert ok
            lines = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes)
            (folder / "labels" / split / f"{stem}.txt").write_text(lines)
    names = "".join(f"  {index}: {name}\n" for index, name in enumerate(CLASSES))
    data_yaml = folder / "data.yaml"
    data_yaml.write_text(
        f"path: {folder.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}"
    )
    return data_yaml


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (centre x, centre y, width, height) boxes."""
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


# --- Ultralytics in a child process ----------------------------------------------------------


def offline_env(home: Path) -> dict[str, str]:
    """The environment that keeps Ultralytics off the network, its settings and fonts in
    ``home`` (ENVIRONMENT.md): a child process given it never downloads anything."""
    fonts = home / "config" / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    # Found, not imported: this process stays free of Ultralytics' dependencies.
    spec = importlib.util.find_spec("matplotlib")
    assert spec is not None and spec.origin is not None
    dejavu = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).is_file():
            shutil.copyfile(dejavu, fonts / name)
    (home / "mpl").mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("YDC_")},
        "YOLO_CONFIG_DIR": str(home / "config"),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "MPLCONFIGDIR": str(home / "mpl"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


# Prepended to every child script: Ultralytics' settings kept inside HOME (argv[1]).
SETTINGS_PRELUDE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    HOME = Path(sys.argv[1])
    from ultralytics.utils import SETTINGS

    SETTINGS.update(
        {key: False for key in ("sync", "clearml", "comet", "dvc", "mlflow", "raytune",
                                "tensorboard", "wandb")}
        | {"runs_dir": str(HOME / "runs"), "datasets_dir": str(HOME / "datasets"),
           "weights_dir": str(HOME / "weights")}
    )
    """
)

TRAIN_SCRIPT = SETTINGS_PRELUDE + textwrap.dedent(
    """
    import time
    from ultralytics import YOLO

    recipe, data_yaml, project = json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    model = YOLO(recipe.pop("model"))
    started = time.monotonic()
    model.train(data=data_yaml, project=project, name="run", exist_ok=True, verbose=False,
                **recipe)
    seconds = time.monotonic() - started
    metrics = dict(model.trainer.metrics)  # the final evaluation of best.pt
    print("RESULT " + json.dumps({
        "best": str(Path(model.trainer.best)),
        "map50": float(metrics["metrics/mAP50(B)"]),
        "seconds": seconds,
    }))
    """
)


def run_ultralytics(script: str, home: Path, *args: str, timeout: float = 600) -> dict[str, object]:
    """Run ``script`` (after the settings prelude) in a child Python offline; argv[1] is
    ``home``, then ``args``. Returns the JSON of its ``RESULT`` line."""
    child = subprocess.run(
        [sys.executable, "-c", script, str(home), *args],
        cwd=home,
        env=offline_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = child.stdout + child.stderr
    assert child.returncode == 0, output[-4000:]
    line = next((x for x in child.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, output[-4000:]
    result: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return result


# --- the fixture ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapesModel:
    """A trained shapes detector: its weights, class names, the dataset it learnt from (with
    its ``data.yaml``), the final val mAP50 Ultralytics gave it, and how long training took."""

    weights: Path
    names: list[str]
    dataset: Path
    map50: float
    train_seconds: float
    home: Path  # an Ultralytics home for children: pass to ``run_ultralytics``

    @property
    def data_yaml(self) -> Path:
        return self.dataset / "data.yaml"


def recipe_key() -> str:
    """The cache key: what the weights depend on."""
    identity = {
        "recipe": RECIPE,
        "classes": CLASSES,
        "generator": GENERATOR_VERSION,
        "images": [TRAIN_IMAGES, VAL_IMAGES],
        "ultralytics": importlib.metadata.version("ultralytics"),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@pytest.fixture(scope="session")
def shapes_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShapesModel]:
    """A yolo11n trained on synthetic shapes until it detects them (mAP50 above 0.5), from the
    pytest cache when this recipe was trained before, else trained now (about a minute)."""
    root = tmp_path_factory.mktemp("shapes")
    data_yaml = write_dataset(root / "dataset")
    home = root / "ultralytics"
    home.mkdir()
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cache_root = Path(cache.mkdir("ydc-shapes-model")) if cache is not None else root / "cache"
    cached = cache_root / recipe_key()
    summary = cached / "model.json"
    if not summary.is_file():
        started = time.monotonic()
        result = run_ultralytics(
            TRAIN_SCRIPT, home, json.dumps(RECIPE), str(data_yaml), str(root / "train")
        )
        staging = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copyfile(str(result["best"]), staging / "best.pt")
        info = {
            "map50": result["map50"],
            "train_seconds": result["seconds"],
            "wall_seconds": time.monotonic() - started,
        }
        (staging / "model.json").write_text(json.dumps(info))
        # Whole or not at all: a run stopped halfway leaves no half-cached model.
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(staging, cached)
        for stale in cache_root.iterdir():  # models of older recipes
            if stale.name != cached.name and not stale.name.endswith(".tmp"):
                shutil.rmtree(stale, ignore_errors=True)
    info = json.loads(summary.read_text())
    yield ShapesModel(
        weights=cached / "best.pt",
        names=list(CLASSES),
        dataset=data_yaml.parent,
        map50=float(info["map50"]),
        train_seconds=float(info["train_seconds"]),
        home=home,
    )
