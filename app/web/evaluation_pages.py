"""Evaluation of a model: start one (a task), and its page: per-class precision, recall and
AP50, the confusion matrix, and the val images with mistakes, each opening in the annotator.
Its JSON twins are under ``/api/v1``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.services import evaluation as evaluation_service
from app.web.annotate_pages import annotate_url
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.render import redirect, render
from app.web.schemas import TaskOut
from app.web.task_pages import TaskId

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["training"], dependencies=[Depends(require_csrf)])

KIND_TITLES = {
    "false_positives": "False positives",
    "missed": "Missed",
    "wrong_class": "Wrong class",
}


@router.post("/models/{model}/evaluate")
async def evaluate_model(request: Request, model: str, stores: StoresDep) -> Response:
    """Queue the evaluation; on to its task's page."""
    task = await evaluation_service.start_evaluation(stores, model)
    return redirect(request, f"/tasks/{task.id}")


@router.get("/evaluations/{task_id}", response_class=HTMLResponse)
async def evaluation_page(
    request: Request,
    task_id: TaskId,
    stores: StoresDep,
    kind: str | None = Query(None, max_length=32),
) -> Response:
    """The scores of a finished evaluation, and its mistakes (of one ``kind`` if asked)."""
    task, result = await evaluation_service.get_evaluation(stores, task_id)
    if result is None:
        return redirect(request, f"/tasks/{task.id}")
    context: dict[str, Any] = {
        "nav": "projects",
        "task": task,
        "result": result,
        "project": result["project"],
        "kind": kind,
        "kinds": KIND_TITLES,
        "mistakes": evaluation_service.mistakes_of(result, kind),
        "annotate_url": annotate_url,
    }
    return render(request, "pages/evaluation.html", context)


@api_router.post("/models/{model}/evaluate", response_model=TaskOut, status_code=202)
async def api_evaluate(model: str, stores: StoresDep) -> TaskOut:
    """Queue the evaluation of a model on its project's current val split."""
    return TaskOut.of(await evaluation_service.start_evaluation(stores, model))


@api_router.get("/evaluations/{task_id}", responses=error_responses(409))
async def api_evaluation(task_id: TaskId, stores: StoresDep) -> dict[str, Any]:
    """A finished evaluation: ``classes`` (boxes, found, missed, false positives, precision,
    recall, AP50 each), ``confusion`` (``[predicted][true]``, the last index is background),
    ``map50`` and ``mistakes`` per image. 409 until it has succeeded."""
    task, result = await evaluation_service.get_evaluation(stores, task_id)
    if result is None:
        raise HTTPException(409, f"Evaluation {task_id} has no result: it is {task.status}.")
    return result
