"""Auto-label use cases: queue a registry model's predictions over a selection of a project's
images as pending suggestions (the ``autolabel`` task), what the form offers, and keeping a
capture session's frames auto-labelled as they arrive."""

from __future__ import annotations

from typing import Any

from app.domain.autolabel import (
    fraction,
    image_size,
    selection_filter,
    training_imgsz,
)
from app.domain.errors import Invalid, NotFound
from app.domain.models import SPLITS, ModelInfo, SessionInfo, TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.services.preferences import autolabel_defaults

KIND = "autolabel"
MAX_ATTEMPTS = 2  # a retry replaces the model's pending suggestions: safe to run again
NO_ACTIVE_MODEL = "Auto-label skipped: the project has no active model."
_RECENT_TASKS = 50  # how far back a session's queued follower is looked for
SELECTION_CHOICES = [
    ("unlabelled", "Unlabelled images"),
    *((f"split:{split}", f"The {split} split") for split in SPLITS),
    ("all", "All images"),
]


async def models_for(stores: Stores, project: str) -> list[ModelInfo]:
    """The project's models, the active one first, then newest first. ``NotFound`` (project)."""
    if await stores.dataset.get(project) is None:
        raise NotFound(f"There is no project named {project!r}.")
    models = await stores.model.list(dataset=project)
    return sorted(models, key=lambda m: not m.is_active)


async def start_autolabel(stores: Stores, project: str, params: dict[str, Any]) -> TaskInfo:
    """Queue the auto-labelling of ``project``: ``model`` (default: the active one),
    ``selection`` (``unlabelled``, ``split:<name>``, ``all``), ``conf``, ``iou``, ``imgsz``.
    ``NotFound`` (project, model), ``Invalid`` (no model to use, a model of another project,
    bad thresholds or selection, nothing selected)."""
    info = await stores.dataset.get(project)
    if info is None:
        raise NotFound(f"There is no project named {project!r}.")
    name = params.get("model") or None
    model: ModelInfo | None
    if name is None:
        model = await stores.model.get_active(dataset=info.name)
        if model is None:
            raise Invalid(
                f"Project {info.name!r} has no active model to auto-label with: train one, or "
                "make one of its models active, or choose a model."
            )
    else:
        model = await stores.model.get(str(name))
        if model is None:
            raise NotFound(f"There is no model named {name!r}.")
        if model.dataset_name.casefold() != info.name.casefold():
            raise Invalid(f"Model {model.name!r} belongs to project {model.dataset_name!r}.")
    selection = str(params.get("selection") or "unlabelled")
    filters = selection_filter(selection)
    defaults = await autolabel_defaults(stores)  # the settings page's thresholds
    conf = fraction(params.get("conf"), "confidence", defaults["conf"])
    iou = fraction(params.get("iou"), "IoU threshold", defaults["iou"])
    size = image_size(params.get("imgsz"), training_imgsz(model.metrics))
    if not await stores.image.count(info.name, filters):
        raise Invalid(f"Project {info.name!r} has no images in the selection {selection!r}.")
    return await stores.task.enqueue(
        KIND,
        {"model": model.name, "selection": selection, "conf": conf, "iou": iou, "imgsz": size},
        dataset=info.name,
        max_attempts=MAX_ATTEMPTS,
    )


async def follow_session_frames(stores: Stores, session: SessionInfo) -> TaskInfo | None:
    """Auto-label a capture session's frames as they arrive (its setting ``autolabel``) with
    the project's active model: queue an auto-label task over the session's frames it has not
    seen yet, unless one is already queued for the session (it will see the new frames too).
    The task starts after the last frame an earlier one of the same model covered. Without an
    active model the session's log says so (once) and nothing is queued."""
    if not session.settings.get("autolabel"):
        return None
    recent = await stores.task.list(dataset=session.dataset, kinds=[KIND], limit=_RECENT_TASKS)
    if any(
        task.status == TaskStatus.QUEUED and task.params.get("session") == session.id
        for task in recent
    ):
        return None
    model = await stores.model.get_active(dataset=session.dataset)
    if model is None:
        if not session.log or session.log[-1] != NO_ACTIVE_MODEL:
            await stores.session.record(session.id, log=NO_ACTIVE_MODEL)
        return None
    defaults = await autolabel_defaults(stores)
    params = {
        "model": model.name,
        "selection": f"session:{session.id}",
        "session": session.id,
        "conf": defaults["conf"],
        "iou": defaults["iou"],
        "imgsz": training_imgsz(model.metrics),
    }
    return await stores.task.enqueue(
        KIND, params, dataset=session.dataset, max_attempts=MAX_ATTEMPTS
    )


async def session_watermark(stores: Stores, session_id: int, model: str) -> int | None:
    """The last frame (image id) of a session that an auto-label task of ``model`` covered
    and finished, so the next one starts after it; ``None`` when none did."""
    covered: list[int] = []
    for task in await stores.task.list(kinds=[KIND], limit=_RECENT_TASKS):
        last = (task.result or {}).get("last_image")
        if (
            task.status == TaskStatus.SUCCEEDED
            and task.params.get("session") == session_id
            and task.params.get("model") == model
            and isinstance(last, int)
        ):
            covered.append(last)
    return max(covered, default=None)


__all__ = [
    "KIND",
    "NO_ACTIVE_MODEL",
    "SELECTION_CHOICES",
    "follow_session_frames",
    "models_for",
    "session_watermark",
    "start_autolabel",
]
