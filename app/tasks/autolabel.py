"""The auto-label job: a registry model (or YOLO-World set to the project's text prompts)
predicts over a selection of the project's images, a batch at a time, and its predictions
become that model's (or the prompts') pending suggestions in the review queue
(``LabelStore.replace_suggestions`` applies ``app.domain.autolabel``'s rules).

Images are read in keyset pages (never all rows at once); the prediction runs in a thread; a
cancel stops between batches and keeps what was stored. Runs in a task worker: torch and
Ultralytics are imported here, inside the functions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.autolabel import (
    DEFAULT_CONFIDENCE,
    DEFAULT_IMGSZ,
    DEFAULT_NMS_IOU,
    Prediction,
    clip_box,
    fraction,
    map_classes,
    merge_same_class,
    selection_filter,
    training_imgsz,
)
from app.domain.errors import Invalid
from app.domain.models import ImageFilter, ImageInfo
from app.domain.prompts import prompt_table
from app.domain.stores import Stores
from app.services.autolabel import session_watermark
from app.tasks.context import TaskContext
from app.tasks.training import prepare_ultralytics
from app.tasks.yoloworld import load_world

KIND = "autolabel"
BATCH = 16
# The model runs at this floor (or the threshold when lower), so the result can say how many
# predictions the confidence threshold left out.
PREDICT_FLOOR = 0.05


class Predictor:
    """A loaded model and the settings it predicts with (CPU, or the GPU when torch sees one)."""

    def __init__(self, model: Any, *, imgsz: int, conf: float, iou: float) -> None:
        import torch

        self.model = model
        self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        self.device: int | str = 0 if torch.cuda.is_available() else "cpu"
        self.imgsz = imgsz
        self.conf = min(conf, PREDICT_FLOOR)
        self.iou = iou

    @classmethod
    def load(cls, weights: Path, *, imgsz: int, conf: float, iou: float) -> Predictor:
        """A registry model's weights."""
        from ultralytics import YOLO

        return cls(YOLO(str(weights)), imgsz=imgsz, conf=conf, iou=iou)

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


@dataclass
class Labeller:
    """What turns a batch of images into suggestions: the predictor, the model class → project
    class mapping, and whose suggestions they are (``model`` ``None``: the text prompts)."""

    predictor: Predictor
    mapping: dict[int, int]
    model: str | None
    confidence: float
    merge_iou: float | None = None  # several prompts of a class: one box per object
    unmatched: Counter[str] = field(default_factory=Counter)


async def label_batch(
    stores: Stores, project: str, labeller: Labeller, images: list[ImageInfo]
) -> dict[str, int]:
    """Predict one batch in a thread and store its suggestions (one unit of work)."""
    present = [image for image in images if image.path.is_file()]
    predictor = labeller.predictor
    found = await asyncio.to_thread(predictor.predict, [image.path for image in present])
    predictions: dict[str, Sequence[Prediction]] = {}
    for image, rows in zip(present, found, strict=True):
        mapped = to_project(rows, labeller.mapping, image, labeller.unmatched, predictor.names)
        if labeller.merge_iou is not None:
            mapped = merge_same_class(mapped, labeller.merge_iou)
        predictions[image.filename] = mapped
    counts = await stores.label.replace_suggestions(
        project, labeller.model, predictions, confidence=labeller.confidence
    )
    counts["missing"] = len(images) - len(present)
    return counts


async def _model_labeller(
    stores: Stores, project: str, params: dict[str, Any], confidence: float, nms_iou: float
) -> tuple[Labeller, int]:
    """A registry model (``params["model"]``) and the image size it predicts at."""
    model_name = str(params["model"])
    weights = await stores.model.load(model_name)
    info = await stores.model.get(model_name)
    imgsz = int(params.get("imgsz") or training_imgsz(info.metrics if info else {}))
    names = [c.name for c in await stores.dataset.get_classes(project)]
    predictor = await asyncio.to_thread(
        Predictor.load, weights, imgsz=imgsz, conf=confidence, iou=nms_iou
    )
    mapping, unmatched_names = map_classes(predictor.names, names)
    unmatched: Counter[str] = Counter(dict.fromkeys(unmatched_names, 0))
    return Labeller(predictor, mapping, model_name, confidence, unmatched=unmatched), imgsz


async def _prompt_labeller(
    stores: Stores, project: str, params: dict[str, Any], confidence: float, nms_iou: float
) -> tuple[Labeller, int]:
    """YOLO-World set to the project's prompts (read now: the latest saved), each prompt's
    detections going to its class."""
    texts, classes = prompt_table(await stores.dataset.get_prompts(project))
    imgsz = int(params.get("imgsz") or DEFAULT_IMGSZ)
    world = await asyncio.to_thread(
        load_world, Path(params["world_weights"]), Path(params["clip_weights"]), texts
    )
    predictor = Predictor(world, imgsz=imgsz, conf=confidence, iou=nms_iou)
    return Labeller(predictor, classes, None, confidence, merge_iou=nms_iou), imgsz


async def autolabel_project(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Auto-label the task's project with its ``model`` (or, with ``prompts``, YOLO-World set
    to the project's prompts) over its ``selection``."""
    started = time.monotonic()
    project = ctx.task.dataset
    params = ctx.task.params
    prompts = bool(params.get("prompts"))
    model_name = None if prompts else params.get("model")
    if project is None or not (prompts or model_name):
        raise Invalid("The auto-label task names no project or model.")
    selection = str(params.get("selection") or "unlabelled")
    filters = selection_filter(selection)
    confidence = fraction(params.get("conf"), "confidence", DEFAULT_CONFIDENCE)
    nms_iou = fraction(params.get("iou"), "IoU threshold", DEFAULT_NMS_IOU)
    # A session's follower starts after the frames an earlier one covered (keyset order).
    session_id = params.get("session")
    after: int | None = None
    if isinstance(session_id, int) and model_name:
        after = await session_watermark(stores, session_id, str(model_name))
    total = await _count_after(stores, project, filters, after)
    await ctx.progress(0.0, "loading YOLO-World" if prompts else f"loading {model_name}")
    await asyncio.to_thread(prepare_ultralytics, stores.data_dir)
    make = _prompt_labeller if prompts else _model_labeller
    labeller, imgsz = await make(stores, project, params, confidence, nms_iou)
    totals: Counter[str] = Counter()
    seen = 0
    await ctx.progress(0.01, f"0 of {total} images")
    while True:
        page = await stores.image.search(project, filters, after_id=after, limit=BATCH)
        if not page:
            break
        after = page[-1].id
        totals.update(await label_batch(stores, project, labeller, page))
        seen += len(page)
        done = min(seen, total) if total else seen
        # Raises on cancel: what is stored stays.
        await ctx.progress(0.01 + 0.98 * done / max(total, seen, 1), f"{seen} of {total} images")
    seconds = time.monotonic() - started
    return {
        "model": model_name,
        "prompts": list(labeller.predictor.names.values()) if prompts else None,
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
        "unmatched_classes": dict(labeller.unmatched),
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


__all__ = ["BATCH", "KIND", "Labeller", "Predictor", "autolabel_project", "label_batch"]
