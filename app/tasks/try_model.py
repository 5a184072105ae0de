"""Trying a model on one picture: the boxes it finds, nothing stored in any project.

Runs in a task worker (torch and Ultralytics are imported here, inside the function), so the
server never loads them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from app.domain.errors import Invalid
from app.domain.stores import Stores
from app.tasks.context import TaskContext
from app.tasks.training import prepare_ultralytics

KIND = "try_model"
CONFIDENCE = 0.25


def _predict(weights: Path, image: Path, imgsz: int) -> dict[str, Any]:
    import cv2
    import torch
    from ultralytics import YOLO

    picture = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if picture is None:
        raise Invalid("The picture cannot be read as an image.")
    model = YOLO(str(weights))
    device = 0 if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    (result,) = model.predict(picture, imgsz=imgsz, conf=CONFIDENCE, device=device, verbose=False)
    seconds = time.perf_counter() - started
    names: dict[int, str] = getattr(result, "names", {})
    boxes: Any = getattr(result, "boxes", None)
    found: list[dict[str, Any]] = []
    if boxes is not None:
        for cls, conf, (x, y, w, h) in zip(
            boxes.cls.tolist(), boxes.conf.tolist(), boxes.xywhn.tolist(), strict=True
        ):
            found.append(
                {
                    "class_id": int(cls),
                    "name": str(names.get(int(cls), int(cls))),
                    "confidence": round(float(conf), 4),
                    "x": float(x),
                    "y": float(y),
                    "w": float(w),
                    "h": float(h),
                }
            )
    height, width = picture.shape[:2]
    return {"width": width, "height": height, "boxes": found, "seconds": round(seconds, 3)}


async def try_model(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """The task's ``model`` run on its uploaded ``image`` (under the data dir's ``tmp/``)."""
    name = str(ctx.task.params.get("model") or "")
    image = stores.data_dir / str(ctx.task.params.get("image") or "")
    if not name or not image.is_file():
        raise Invalid("The picture to try the model on is gone; upload it again.")
    weights = await stores.model.load(name)
    info = await stores.model.get(name)
    imgsz = int((info.metrics.get("args") or {}).get("imgsz", 640)) if info else 640
    await ctx.progress(0.1, "loading the model")
    await asyncio.to_thread(prepare_ultralytics, stores.data_dir)
    found = await asyncio.to_thread(_predict, weights, image, imgsz)
    return {"model": name, "imgsz": imgsz, **found}


__all__ = ["KIND", "try_model"]
