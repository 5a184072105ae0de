"""Auto-labelling: the form (the project's models, the active one first; a selection; a
confidence) that queues an ``autolabel`` task and goes on to its page, and its JSON twin
``POST /api/v1/projects/{name}/autolabel``. A refusal (no model, nothing selected) comes back
in the form with 422."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from app.domain.errors import Invalid
from app.domain.stores import Stores
from app.services import autolabel as autolabel_service
from app.services import preferences as preference_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.render import redirect, render
from app.web.schemas import TaskOut

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["review"], dependencies=[Depends(require_csrf)])


class AutolabelCreate(BaseModel):
    """An auto-label run: every field may be left out (the active model over the unlabelled
    images at the preferences' confidence and NMS IoU, 0.25 and 0.7 unless changed on the
    settings page, and the model's training image size)."""

    model: str | None = Field(None, max_length=200)
    selection: str = Field(
        "unlabelled",
        max_length=1000,
        description="unlabelled, all, split:<name>, session:<id> or filter:<the grid's query>",
    )
    conf: float | None = None
    iou: float | None = None
    imgsz: int | None = None


async def _form_context(
    stores: Stores, name: str, values: dict[str, str], error: str | None = None
) -> dict[str, Any]:
    models = await autolabel_service.models_for(stores, name)
    project = await stores.dataset.get(name)
    assert project is not None  # models_for raised NotFound otherwise
    selections = list(autolabel_service.SELECTION_CHOICES)
    if values.get("selection", "").startswith("filter:"):
        selections.insert(0, (values["selection"], "The images the grid's filter shows"))
    return {
        "nav": "projects",
        "project": project,
        "models": models,
        "selections": selections,
        "values": values,
        "error": error,
    }


@router.get("/projects/{name}/autolabel", response_class=HTMLResponse)
async def autolabel_page(
    request: Request,
    name: str,
    stores: StoresDep,
    selection: Annotated[str, Query(max_length=1000)] = "",
) -> HTMLResponse:
    """The auto-label form: whole page, or the form alone for htmx (the review page loads it).
    ``selection=filter:<grid query>`` (the grid's "Auto-label these") offers those images."""
    chosen = selection.strip() or "unlabelled"
    defaults = await preference_service.autolabel_defaults(stores)  # the settings page's
    values = {"selection": chosen} | {k: f"{v:g}" for k, v in defaults.items()}
    context = await _form_context(stores, name, values)
    return render(request, "autolabel/page.html", context, fragment="autolabel/_form.html")


@router.post("/projects/{name}/autolabel")
async def autolabel_project(
    request: Request,
    name: str,
    stores: StoresDep,
    model: Annotated[str, Form(max_length=200)] = "",
    selection: Annotated[str, Form(max_length=1000)] = "unlabelled",
    conf: Annotated[str, Form(max_length=32)] = "",
    iou: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Queue the run and go on to its task's page; a refusal shows the form again (422). A
    threshold left blank is the preferences' default."""
    values = {"model": model, "selection": selection, "conf": conf, "iou": iou}
    try:
        defaults = await preference_service.autolabel_defaults(stores)
        params: dict[str, Any] = {k: v.strip() for k, v in values.items() if v.strip()}
        task = await autolabel_service.start_autolabel(stores, name, defaults | params)
    except Invalid as refusal:
        context = await _form_context(stores, name, values, error=refusal.message)
        return render(
            request,
            "autolabel/page.html",
            context,
            fragment="autolabel/_form.html",
            status_code=422,
        )
    return redirect(request, f"/tasks/{task.id}")


@api_router.post("/projects/{name}/autolabel", response_model=TaskOut, status_code=202)
async def api_autolabel(name: str, body: AutolabelCreate, stores: StoresDep) -> TaskOut:
    """Queue an auto-label run: the model's predictions become its pending suggestions."""
    params = body.model_dump(exclude_none=True)
    defaults = await preference_service.autolabel_defaults(stores)  # conf, iou left out
    return TaskOut.of(await autolabel_service.start_autolabel(stores, name, defaults | params))
