"""Training use cases: queue a training of a project (refused at once when it has nothing to
learn from), resume a cancelled or interrupted one, and read a training's epochs.

The training itself runs in a task worker (``app.tasks.training``), the one place that imports
torch and Ultralytics.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.models import ImageFilter, ImageState, TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.domain.training import KIND, params_of, validate_training_params
from app.services.projects import get_project
from app.services.system import ensure_disk_room
from app.services.versions import version_for_training

# Never retried by itself: a second attempt would start the epochs over (a person resumes).
MAX_ATTEMPTS = 1


async def start_training(stores: Stores, project: str, raw: dict[str, Any]) -> TaskInfo:
    """Queue a training with the settings of a form or API body. ``Invalid`` with the reason
    when the settings are wrong, or the project has no labelled train image or no labelled val
    image (Ultralytics would fail minutes later, after the snapshot). With ``version`` it
    trains on that ready dataset version instead of the project's current data (the model
    still joins the project's registry)."""
    found = await get_project(stores, project)
    models = {m.name for m in await stores.model.list(dataset=found.name)}
    params = validate_training_params(raw, models)
    if params.version is not None:
        # A ready version holds labelled train and val images by construction (checked).
        version = await version_for_training(stores, params.version)
        await ensure_disk_room(stores, outcome="The training was not queued.")
        chosen = replace(params, version=version.name).to_params()
        return await stores.task.enqueue(
            KIND, chosen, dataset=found.name, max_attempts=MAX_ATTEMPTS
        )
    if not found.classes:
        raise Invalid(f"Project {found.name!r} has no classes: add the classes first.")
    for split, role in (("train", "learn from"), ("val", "measure it on")):
        labelled = await stores.image.count(
            found.name, ImageFilter(split=split, state=ImageState.LABELLED)
        )
        if not labelled:
            raise Invalid(
                f"Project {found.name!r} has no labelled {split} images to {role}: label some "
                f"{split} images (or move labelled ones there) first."
            )
    await ensure_disk_room(stores, outcome="The training was not queued.")
    return await stores.task.enqueue(
        KIND, params.to_params(), dataset=found.name, max_attempts=MAX_ATTEMPTS
    )


async def resume_training(stores: Stores, task_id: int) -> TaskInfo:
    """Queue a training that continues a cancelled or failed one from its last weights, with
    the same settings. ``Conflict`` while it runs or once it has succeeded."""
    task = await stores.task.get(task_id)
    if task.kind != KIND:
        raise NotFound(f"Task {task_id} is not a training.")
    if task.status not in (TaskStatus.CANCELLED, TaskStatus.FAILED):
        raise Conflict(f"Training {task_id} is {task.status}: only a stopped one can resume.")
    if task.dataset is None:
        raise NotFound(f"The project of training {task_id} is gone.")
    params = params_of(task.params)
    await ensure_disk_room(stores, outcome="The training was not resumed.")
    resumed = {**params.to_params(), "resume_of": task_id}
    return await stores.task.enqueue(KIND, resumed, dataset=task.dataset, max_attempts=MAX_ATTEMPTS)


async def training_epochs(stores: Stores, task_id: int) -> list[dict[str, Any]]:
    """The epochs a training has recorded so far (a resumed one: its own and the earlier
    task's, in order). ``NotFound`` for an unknown task."""
    task = await stores.task.get(task_id)
    epochs: dict[int, dict[str, Any]] = {}
    chain = [task]
    while (earlier := chain[-1].params.get("resume_of")) and len(chain) < 20:
        try:
            chain.append(await stores.task.get(int(earlier)))
        except NotFound:
            break
    for link in reversed(chain):
        for row in await stores.task.epochs(link.id):
            epochs[row["epoch"]] = row
    return [epochs[n] for n in sorted(epochs)]


__all__ = ["MAX_ATTEMPTS", "resume_training", "start_training", "training_epochs"]
