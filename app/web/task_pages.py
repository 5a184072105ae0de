"""Task pages: the task list, one task's page, and the task panel that polls itself.

The panel (``tasks/_panel.html``) is the one piece of markup for a task: the task page includes
it, the project page's export box receives it, and ``GET /tasks/{id}/panel`` answers its polls
until the task has finished (a finished panel carries no trigger, so polling stops by itself).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.domain.models import TaskInfo
from app.services import notifications as notify_service
from app.services import tasks as task_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.render import is_htmx, redirect, render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

# Bounded like the API's, so an absurd id is a 422, not a database overflow.
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
PAGE_SIZE = 25
PANEL = "tasks/_panel.html"


def _panel(request: Request, task: TaskInfo) -> HTMLResponse:
    """The panel fragment alone; never cached, since it is polled."""
    response = render(request, PANEL, {"task": task})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(
    request: Request,
    stores: StoresDep,
    before_id: int | None = Query(None, ge=1, le=2**63 - 1),
) -> HTMLResponse:
    """Recent tasks, newest first, ``PAGE_SIZE`` at a time (the list fragment for htmx)."""
    tasks, older = await task_service.recent_tasks(stores, limit=PAGE_SIZE, before_id=before_id)
    webhooks = await notify_service.task_deliveries(stores, [t.id for t in tasks])
    context = {
        "nav": "tasks",
        "tasks": tasks,
        "older": older,
        "before_id": before_id,
        # A failing webhook keeps the list polling, so its retries show.
        "any_unfinished": any(not t.finished for t in tasks)
        or any(d.state in ("pending", "sending") and d.failing for d in webhooks.values()),
        "webhooks": webhooks,
        "deliveries": [] if is_htmx(request) else await notify_service.recent_deliveries(stores),
    }
    return render(request, "pages/tasks.html", context, fragment="tasks/_list.html")


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: TaskId, stores: StoresDep) -> HTMLResponse:
    """One task: its panel, on a page of its own (the panel alone for htmx)."""
    task = await task_service.get_task(stores, task_id)
    return render(request, "pages/task.html", {"nav": "tasks", "task": task}, fragment=PANEL)


@router.get("/tasks/{task_id}/panel", response_class=HTMLResponse)
async def task_panel(request: Request, task_id: TaskId, stores: StoresDep) -> HTMLResponse:
    """The panel fragment, always: what a panel's polling asks for."""
    return _panel(request, await task_service.get_task(stores, task_id))


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(request: Request, task_id: TaskId, stores: StoresDep) -> Response:
    """Cancel; htmx gets the panel back, a plain form is sent to the task's page."""
    task = await task_service.cancel_task(stores, task_id)
    if is_htmx(request):
        return _panel(request, task)
    return redirect(request, f"/tasks/{task.id}")


@router.post("/projects/{name}/export")
async def export_project(
    request: Request,
    name: str,
    stores: StoresDep,
    splits: Annotated[list[str] | None, Form()] = None,
    format: Annotated[str | None, Form()] = None,
) -> Response:
    """Queue an export of the ticked splits in the chosen format; htmx gets its panel (into the
    export box), a plain form its page. A post without fields exports everything as Ultralytics;
    the box always sends a format, so with no split ticked it is refused (422)."""
    if format is not None and splits is None:
        splits = []  # unticked checkboxes send nothing
    task = await task_service.start_export(stores, name, splits=splits, format=format)
    if is_htmx(request):
        return _panel(request, task)
    return redirect(request, f"/tasks/{task.id}")
