"""Training over HTTP: start a training of a project, follow its epochs, resume a stopped one.

The JSON API is here; the pages (the training form, the chart, the models page) join it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from app.services import training as training_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.schemas import TaskOut
from app.web.task_pages import TaskId

api_router = APIRouter(prefix="/api/v1", tags=["training"], dependencies=[Depends(require_csrf)])


@api_router.post("/projects/{name}/train", response_model=TaskOut, status_code=202)
async def api_train(
    name: str,
    stores: StoresDep,
    body: dict[str, Any] = Body(  # noqa: B008 - FastAPI's way to declare a body
        default_factory=dict,
        examples=[{"base": "yolo11n.yaml", "epochs": 50, "imgsz": 640, "batch": 16}],
    ),
) -> TaskOut:
    """Queue a training: ``base`` (an architecture such as ``yolo11n.yaml``, or
    ``model:<name>`` to fine-tune a model of the project), ``epochs``, ``imgsz`` (a multiple
    of 32), ``batch``, ``patience``. 422 with the reason when the project has no labelled train
    or val image."""
    return TaskOut.of(await training_service.start_training(stores, name, body))


@api_router.get("/tasks/{task_id}/epochs")
async def api_epochs(task_id: TaskId, stores: StoresDep) -> list[dict[str, Any]]:
    """A training's epochs so far: ``epoch`` and its losses, precision, recall, mAP50,
    mAP50-95."""
    return await training_service.training_epochs(stores, task_id)


@api_router.post("/tasks/{task_id}/resume", response_model=TaskOut, status_code=202)
async def api_resume(task_id: TaskId, stores: StoresDep) -> TaskOut:
    """Queue a training that continues a cancelled or failed one from its last weights."""
    return TaskOut.of(await training_service.resume_training(stores, task_id))
