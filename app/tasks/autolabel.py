"""The auto-label job: a registry model predicts over a selection of the project's images, a
batch at a time, and its predictions become that model's pending suggestions in the review
queue (``LabelStore.replace_suggestions`` applies ``app.domain.autolabel``'s rules).

Images are read in keyset pages (never all rows at once); the prediction runs in a thread; a
cancel stops between batches and keeps what was stored. Runs in a task worker: torch and
Ultralytics are imported here, inside the functions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.domain.autolabel import (
    DEFAULT_CONFIDENCE,
    DEFAULT_NMS_IOU,
    Prediction,
    clip_box,
    fraction,
    map_classes,
    selection_filter,
    training_imgsz,
)
from app.domain.errors import Invalid
from app.domain.models import ImageFilter, ImageInfo
from app.domain.stores import Stores
from app.services.autolabel import session_watermark
from app.tasks.context import TaskContext
from app.tasks.training import prepare_ultralytics

KIND = "autolabel"
BATCH = 16
# The model runs at this floor (or the threshold when lower), so the result can say how many
# predictions the confidence threshold left out.
PREDICT_FLOOR = 0.05


class Predictor:
    """A loaded model and the settings it predicts with (CPU, or the GPU when torch sees one)."""

    def __init__(self, weights: Path, *, imgsz: int, conf: float, iou: float) -> None:
        import torch
        from ultralytics import YOLO

        self.model = YOLO(str(weights))
        self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        self.device: int | str = 0 if torch.cuda.is_available() else "cpu"
        self.imgsz = imgsz
        self.conf = min(conf, PREDICT_FLOOR)
        self.iou = iou

    def predict(self, paths: Sequence[Path]) -> list[list[Prediction]]:
        """The model's boxes on each image (model class indices), clipped to the image."""
        found: list[list[Prediction]] = []
        results = self.model.predict(
            [str(p) for p in paths],
            imgsz=self.imgsz,
            conf=self.conf,
            iou=self.iou,
            device=self.device,
            verbose=False,
        )
        for result in results:
            boxes: Any = getattr(result, "boxes", None)
            rows: list[Prediction] = []
            if boxes is not None:
                for cls, conf, (x, y, w, h) in zip(
                    boxes.cls.tolist(), boxes.conf.tolist(), boxes.xywhn.tolist(), strict=True
                ):
                    rows.append((int(cls), float(conf), *clip_box(x, y, w, h)))
            found.append(rows)
        return found


def to_project(
    predictions: list[Prediction],
    mapping: dict[int, int],
    image: ImageInfo,
    unmatched: Counter[str],
    names: dict[int, str],
) -> list[Prediction]:
    """Model predictions in the project's class indices; those of unmatched classes counted
    (by the model's name) and dropped, and so are boxes under one pixel."""
    kept: list[Prediction] = []
    for cls, conf, x, y, w, h in predictions:
        target = mapping.get(cls)
        if target is None:
            unmatched[names.get(cls, str(cls))] += 1
        elif w * image.width >= 1 and h * image.height >= 1:
            kept.append((target, conf, x, y, w, h))
    return kept


async def label_batch(
    stores: Stores,
    project: str,
    model: str,
    predictor: Predictor,
    images: list[ImageInfo],
    mapping: dict[int, int],
    unmatched: Counter[str],
    confidence: float,
) -> dict[str, int]:
    """Predict one batch in a thread and store its suggestions (one unit of work)."""
    present = [image for image in images if image.path.is_file()]
    found = await asyncio.to_thread(predictor.predict, [image.path for image in present])
    predictions: dict[str, Sequence[Prediction]] = {
        image.filename: to_project(rows, mapping, image, unmatched, predictor.names)
        for image, rows in zip(present, found, strict=True)
    }
    counts = await stores.label.replace_suggestions(
        project, model, predictions, confidence=confidence
    )
    counts["missing"] = len(images) - len(present)
    return counts


async def autolabel_project(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Auto-label the task's project with its ``model`` over its ``selection``."""
    started = time.monotonic()
    project = ctx.task.dataset
    params = ctx.task.params
    model_name = params.get("model")
    if project is None or not model_name:
        raise Invalid("The auto-label task names no project or model.")
    selection = str(params.get("selection") or "unlabelled")
    filters = selection_filter(selection)
    confidence = fraction(params.get("conf"), "confidence", DEFAULT_CONFIDENCE)
    nms_iou = fraction(params.get("iou"), "IoU threshold", DEFAULT_NMS_IOU)
    weights = await stores.model.load(model_name)
    info = await stores.model.get(model_name)
    imgsz = int(params.get("imgsz") or training_imgsz(info.metrics if info else {}))
    names = [c.name for c in await stores.dataset.get_classes(project)]
    # A session's follower starts after the frames an earlier one covered (keyset order).
    session_id = params.get("session")
    after: int | None = None
    if isinstance(session_id, int):
        after = await session_watermark(stores, session_id, model_name)
    total = await _count_after(stores, project, filters, after)
    await ctx.progress(0.0, f"loading {model_name}")
    await asyncio.to_thread(prepare_ultralytics, stores.data_dir)
    predictor = await asyncio.to_thread(
        Predictor, weights, imgsz=imgsz, conf=confidence, iou=nms_iou
    )
    mapping, unmatched_names = map_classes(predictor.names, names)
    unmatched: Counter[str] = Counter({name: 0 for name in unmatched_names})
    totals: Counter[str] = Counter()
    seen = 0
    await ctx.progress(0.01, f"0 of {total} images")
    while True:
        page = await stores.image.search(project, filters, after_id=after, limit=BATCH)
        if not page:
            break
        after = page[-1].id
        totals.update(
            await label_batch(
                stores, project, model_name, predictor, page, mapping, unmatched, confidence
            )
        )
        seen += len(page)
        done = min(seen, total) if total else seen
        # Raises on cancel: what is stored stays.
        await ctx.progress(0.01 + 0.98 * done / max(total, seen, 1), f"{seen} of {total} images")
    seconds = time.monotonic() - started
    return {
        "model": model_name,
        "project": project,
        "selection": selection,
        "conf": confidence,
        "iou": nms_iou,
        "imgsz": imgsz,
        "images": seen,
        "missing": totals["missing"] + totals["gone"],
        "suggestions_added": totals["added"],
        "suggestions_replaced": totals["replaced"],
        "skipped": {
            "overlap_accepted": totals["overlap_accepted"],
            "matches_rejected": totals["matches_rejected"],
            "below_confidence": totals["below_confidence"],
        },
        "unmatched_classes": dict(unmatched),
        "seconds": round(seconds, 3),
        "images_per_second": round(seen / seconds, 3) if seconds > 0 else None,
        "last_image": after,
    }


async def _count_after(
    stores: Stores, project: str, filters: ImageFilter | None, after: int | None
) -> int:
    """How many images of the selection come after ``after`` (all of them when ``None``)."""
    if after is None:
        return await stores.image.count(project, filters)
    total = 0
    while page := await stores.image.search(project, filters, after_id=after, limit=500):
        total += len(page)
        after = page[-1].id
    return total


__all__ = ["BATCH", "KIND", "Predictor", "autolabel_project", "label_batch"]
