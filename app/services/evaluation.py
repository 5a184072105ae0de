"""Evaluation use cases: queue the evaluation of a registry model on its project's current val
split, and read a finished one (scores, confusion matrix, the images with mistakes)."""

from __future__ import annotations

from typing import Any

from app.domain.errors import Invalid, NotFound
from app.domain.models import ImageFilter, ImageState, TaskInfo, TaskStatus
from app.domain.stores import Stores

KIND = "evaluate"
MAX_ATTEMPTS = 2  # it changes nothing: running it again is safe
MISTAKE_KINDS = ("false_positives", "missed", "wrong_class")


async def start_evaluation(stores: Stores, model: str) -> TaskInfo:
    """Queue the evaluation of ``model`` on its project's labelled val images. ``NotFound``
    for an unknown model, ``Invalid`` when the project has no labelled val image."""
    info = await stores.model.get(model)
    if info is None:
        raise NotFound(f"There is no model named {model!r}.")
    labelled = await stores.image.count(
        info.dataset_name, ImageFilter(split="val", state=ImageState.LABELLED)
    )
    if not labelled:
        raise Invalid(
            f"Project {info.dataset_name!r} has no labelled val images to evaluate {model!r} on."
        )
    return await stores.task.enqueue(
        KIND, {"model": info.name}, dataset=info.dataset_name, max_attempts=MAX_ATTEMPTS
    )


async def get_evaluation(stores: Stores, task_id: int) -> tuple[TaskInfo, dict[str, Any] | None]:
    """An evaluation task and its result (``None`` until it has succeeded)."""
    task = await stores.task.get(task_id)
    if task.kind != KIND:
        raise NotFound(f"Task {task_id} is not an evaluation.")
    if task.status != TaskStatus.SUCCEEDED or not task.result:
        return task, None
    return task, task.result


def mistakes_of(result: dict[str, Any], kind: str | None) -> list[dict[str, Any]]:
    """The images with mistakes, or only those with mistakes of ``kind``."""
    images: list[dict[str, Any]] = result.get("mistakes") or []
    if kind is None:
        return images
    if kind not in MISTAKE_KINDS:
        raise Invalid(f"{kind!r} is not a kind of mistake ({', '.join(MISTAKE_KINDS)}).")
    return [image for image in images if image.get(kind)]


__all__ = ["KIND", "MISTAKE_KINDS", "get_evaluation", "mistakes_of", "start_evaluation"]
