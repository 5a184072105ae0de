"""The evaluation job: a model of the registry run on the project's current val split, scored
by ``app.domain.evaluation`` (per-class P/R/AP50, a confusion matrix, each image's mistakes).

Runs in a task worker: torch and Ultralytics are imported here, inside the functions.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from app.domain.errors import Invalid
from app.domain.evaluation import Box, Prediction, evaluate
from app.domain.stores import Stores
from app.tasks.context import TaskContext
from app.tasks.training import prepare_ultralytics

KIND = "evaluate"
PREDICT_CONFIDENCE = 0.001  # every prediction counts for AP; mistakes use evaluation.CONFIDENCE
MAX_MISTAKE_IMAGES = 1000  # the browser's list; the counts cover all
BATCH = 16


def _read_truth(label: Path) -> list[Box]:
    boxes: list[Box] = []
    if not label.is_file():
        return boxes
    for line in label.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 5:
            c, x, y, w, h = parts
            boxes.append((int(c), float(x), float(y), float(w), float(h)))
    return boxes


def _predict_all(
    weights: Path, images: list[Path], imgsz: int, check: Any
) -> list[list[Prediction]]:
    """Predictions for every image (CPU, or the GPU when torch sees one), a batch at a time;
    ``check`` is called between batches (it raises to stop)."""
    import torch
    from ultralytics import YOLO

    model = YOLO(str(weights))
    device = 0 if torch.cuda.is_available() else "cpu"
    found: list[list[Prediction]] = []
    for start in range(0, len(images), BATCH):
        check(start)
        batch = [str(p) for p in images[start : start + BATCH]]
        for result in model.predict(
            batch, imgsz=imgsz, conf=PREDICT_CONFIDENCE, device=device, verbose=False
        ):
            boxes: Any = getattr(result, "boxes", None)
            rows: list[Prediction] = []
            if boxes is not None:
                for cls, conf, (x, y, w, h) in zip(
                    boxes.cls.tolist(), boxes.conf.tolist(), boxes.xywhn.tolist(), strict=True
                ):
                    rows.append((int(cls), float(conf), float(x), float(y), float(w), float(h)))
            found.append(rows)
    return found


async def evaluate_model(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Evaluate the task's ``model`` on its project's val split as it is now."""
    project = ctx.task.dataset
    model_name = ctx.task.params.get("model")
    if project is None or not model_name:
        raise Invalid("The evaluation names no project or model.")
    weights = await stores.model.load(model_name)
    info = await stores.model.get(model_name)
    imgsz = int((info.metrics.get("args") or {}).get("imgsz", 640)) if info else 640
    folder = stores.data_dir / "training" / f"eval-{ctx.task.id}"
    await ctx.progress(0.0, "freezing the val split")
    try:
        snapshot = await stores.dataset.snapshot(project, folder, splits=["val"])
        val_images = sorted((folder / "images" / "val").glob("*")) if snapshot.images["val"] else []
        if not val_images:
            raise Invalid(f"Project {project!r} has no labelled val images to evaluate on.")
        names = [c.name for c in await stores.dataset.get_classes(project)]
        truth = [
            _read_truth(folder / "labels" / "val" / (path.stem + ".txt")) for path in val_images
        ]
        await ctx.progress(0.01, f"predicting {len(val_images)} val images")
        loop = asyncio.get_running_loop()
        total = len(val_images)

        def check(done: int) -> None:
            future = asyncio.run_coroutine_threadsafe(
                ctx.progress(0.01 + 0.97 * done / total, f"{done} of {total} images"), loop
            )
            future.result()  # raises Cancelled into the thread: the prediction stops

        await asyncio.to_thread(prepare_ultralytics, stores.data_dir)
        predictions = await asyncio.to_thread(_predict_all, weights, val_images, imgsz, check)
        scores, per_image = evaluate(list(zip(truth, predictions, strict=True)), names)
        mistakes: list[dict[str, Any]] = []
        for path, boxes, preds, found in zip(
            val_images, truth, predictions, per_image, strict=True
        ):
            if not found.any or len(mistakes) >= MAX_MISTAKE_IMAGES:
                continue
            image = await stores.image.get(project, path.name)
            mistakes.append(
                {
                    "filename": path.name,
                    "sha256": image.sha256,
                    "false_positives": [list(preds[p]) for p in found.false_positives],
                    "missed": [list(boxes[t]) for t in found.missed],
                    "wrong_class": [
                        {"true": list(boxes[t]), "predicted": list(preds[p])}
                        for t, p in found.wrong_class
                    ],
                }
            )
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    await ctx.progress(0.99, "scored")
    return {
        "model": model_name,
        "project": project,
        "names": names,
        "snapshot": snapshot.to_dict(),
        **scores.to_dict(),
        "images_with_mistakes": sum(1 for m in per_image if m.any),
        "mistakes": mistakes,
    }


__all__ = ["KIND", "evaluate_model"]
