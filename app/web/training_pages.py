"""Training and the model registry over HTTP: the project page's training box, a training's
panel with its chart and its log, resuming a stopped training, the models page (make active,
download, export to ONNX and download that, delete, upload a ``.pt``), and their JSON twins
under ``/api/v1``.

The task panel (``tasks/_panel.html``) of a training polls ``/tasks/{id}/training-panel``,
which renders the same panel with the training's epochs, chart and outcome; a training panel
rendered elsewhere (the task page, a cancel) fetches that once on load.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from markupsafe import Markup
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from app.config import Settings
from app.domain.errors import Invalid
from app.domain.models import ModelInfo, TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.domain.training import ARCHITECTURES, MODEL_PREFIX, TrainingParams
from app.services import models as model_service
from app.services import tasks as task_service
from app.services import training as training_service
from app.services import versions as version_service
from app.services.projects import get_project
from app.web.api_uploads import large_upload_form
from app.web.charts import training_chart
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.pages import project_context
from app.web.render import is_htmx, redirect, render
from app.web.schemas import TaskOut
from app.web.system_pages import DISK_FULL
from app.web.task_pages import PANEL, TaskId

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["training"], dependencies=[Depends(require_csrf)])

ModelName = Annotated[str, Path(min_length=1, max_length=200)]
TRAIN_FIELDS = ("base", "epochs", "imgsz", "batch", "patience", "version")
# Which field a refusal is about, by how validate_training_params words it.
ERROR_FIELDS = {
    "Epochs": "epochs",
    "Imgsz": "imgsz",
    "Image size": "imgsz",
    "Batch": "batch",
    "Patience": "patience",
}
TRUE = {"1", "true", "on", "yes"}


# --- the training box -------------------------------------------------------------------------


def _defaults() -> dict[str, str]:
    params = TrainingParams()
    return {k: str(getattr(params, k) or "") for k in TRAIN_FIELDS}


def _error_field(message: str) -> str | None:
    if "version" in message:
        return "version"
    for prefix, name in ERROR_FIELDS.items():
        if message.startswith(prefix):
            return name
    return "base" if "architecture" in message or "model" in message else None


async def _model_names(stores: Stores, project: str) -> list[str]:
    return [m.name for m in await stores.model.list(dataset=project)]


def _training_form(
    models: list[str],
    values: dict[str, str] | None = None,
    *,
    error: str | None = None,
    task: TaskInfo | None = None,
    versions: list[str] | None = None,
) -> dict[str, Any]:
    """What ``training/_form.html`` shows: the choices, the values, a refusal, a started task."""
    return {
        "architectures": ARCHITECTURES,
        "models": models,
        "versions": versions or [],
        "model_prefix": MODEL_PREFIX,
        "fields": {**_defaults(), **{k: v for k, v in (values or {}).items() if v.strip()}},
        "error": error,
        "error_field": _error_field(error) if error else None,
        "task": task,
    }


@router.get("/projects/{name}/train/bases", response_class=HTMLResponse)
async def training_bases(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The base select of the training box, with the project's models to fine-tune (the
    project page asks for it when it was rendered without them)."""
    project = await get_project(stores, name)
    context = {
        "project": project,
        "training_form": _training_form(await _model_names(stores, project.name)),
    }
    return render(request, "training/_bases.html", context)


async def _version_names(stores: Stores) -> list[str]:
    return [v.name for v in await version_service.ready_versions(stores)]


@router.get("/projects/{name}/train/data", response_class=HTMLResponse)
async def training_data(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The data select of the training box: the project's current data or a ready dataset
    version (the project page asks for it when it was rendered without them)."""
    project = await get_project(stores, name)
    form = _training_form([], versions=await _version_names(stores))
    return render(request, "training/_data.html", {"project": project, "training_form": form})


@router.post("/projects/{name}/train")
async def train_project(
    request: Request,
    name: str,
    stores: StoresDep,
    base: Annotated[str, Form()] = "",
    epochs: Annotated[str, Form()] = "",
    imgsz: Annotated[str, Form()] = "",
    batch: Annotated[str, Form()] = "",
    patience: Annotated[str, Form()] = "",
    version: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Queue a training with the box's settings: htmx gets the box back with the task's panel
    in it, a plain form the task's page. A refusal comes back in the box (422)."""
    project = await get_project(stores, name)
    values = {
        "base": base,
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "patience": patience,
        "version": version,
    }
    raw = {k: v for k, v in values.items() if v.strip()}
    try:
        task = await training_service.start_training(stores, project.name, raw)
    except Invalid as refusal:
        form = _training_form(
            await _model_names(stores, project.name),
            values,
            error=refusal.message,
            versions=await _version_names(stores),
        )
        context = project_context(project, training_form=form)
        return render(
            request,
            "pages/project.html",
            context,
            fragment="training/_form.html",
            status_code=422,
        )
    if not is_htmx(request):
        return redirect(request, f"/tasks/{task.id}")
    form = _training_form(
        await _model_names(stores, project.name),
        values,
        task=task,
        versions=await _version_names(stores),
    )
    context = {
        "project": project,
        "training_form": form,
        "task": task,
        "training": await _training(stores, task),
    }
    return render(request, "training/_form.html", context)


# --- a training's panel, log and resume ---------------------------------------------------------


async def _training(stores: Stores, task: TaskInfo) -> dict[str, Any]:
    """What the panel's training section shows: epochs done of planned, the chart, and once
    it has succeeded the model it registered."""
    epochs = await training_service.training_epochs(stores, task.id)
    planned = task.params.get("epochs")
    total = int(planned) if isinstance(planned, int) else None
    model = None
    result = task.result or {}
    if task.status == TaskStatus.SUCCEEDED and result.get("model"):
        model = await stores.model.get(str(result["model"]))
    return {
        "epochs": len(epochs),
        "total": total,
        # charts.py escapes every text it writes into the SVG.
        "chart": Markup(training_chart(epochs, total, ident=f"chart-{task.id}")),
        "model": model,
        "result": result,
    }


@router.get("/tasks/{task_id}/training-panel", response_class=HTMLResponse)
async def training_panel(request: Request, task_id: TaskId, stores: StoresDep) -> HTMLResponse:
    """A training's panel with its chart: what the panel of a running training polls."""
    task = await task_service.get_task(stores, task_id)
    context: dict[str, Any] = {"task": task}
    if task.kind == training_service.KIND:
        context["training"] = await _training(stores, task)
    response = render(request, PANEL, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/tasks/{task_id}/log", response_class=HTMLResponse)
async def training_log_page(request: Request, task_id: TaskId, stores: StoresDep) -> HTMLResponse:
    """The last lines of a training's log, refreshing while it runs (the log alone for htmx)."""
    task, text, lines = await model_service.training_log(stores, task_id)
    context = {
        "nav": "tasks",
        "task": task,
        "log": text,
        "lines": lines,
        "shown": model_service.LOG_LINES,
    }
    response = render(request, "pages/training_log.html", context, fragment="training/_log.html")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/tasks/{task_id}/resume")
async def resume_training(request: Request, task_id: TaskId, stores: StoresDep) -> Response:
    """Continue a cancelled or failed training from its last weights; on to the new task."""
    task = await training_service.resume_training(stores, task_id)
    return redirect(request, f"/tasks/{task.id}")


# --- the models page ------------------------------------------------------------------------------


async def _models_page(
    request: Request,
    stores: Stores,
    name: str,
    *,
    fragment: str = "models/_list.html",
    upload: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    project = await get_project(stores, name)
    context = {
        "nav": "projects",
        "project": project,
        "models": await model_service.project_models(stores, project.name),
        "upload": upload or {"name": "", "error": None},
    }
    return render(request, "pages/models.html", context, fragment=fragment, status_code=status_code)


@router.get("/projects/{name}/models", response_class=HTMLResponse)
async def models_page(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The project's models, newest first, with their metrics and actions (the list for htmx)."""
    return await _models_page(request, stores, name)


def _models_url(project: str) -> str:
    return f"/projects/{quote(project, safe='')}/models"


@router.post("/models/{model}/activate")
async def activate_model(request: Request, model: ModelName, stores: StoresDep) -> Response:
    """Make the model its project's active one; htmx gets the list again, a form the page."""
    info = await model_service.activate_model(stores, model)
    if is_htmx(request):
        return await _models_page(request, stores, info.dataset_name)
    return redirect(request, _models_url(info.dataset_name))


async def _confirm_delete(
    request: Request, stores: Stores, model: str, *, error: str | None = None
) -> HTMLResponse:
    view = await model_service.get_model(stores, model)
    project = await get_project(stores, view.info.dataset_name)
    context = {"nav": "projects", "project": project, "model": view, "error": error}
    return render(
        request,
        "models/confirm_delete.html",
        context,
        fragment="models/_confirm_delete.html",
        status_code=422 if error else 200,
    )


@router.get("/models/{model}/delete", response_class=HTMLResponse)
async def confirm_delete_model(request: Request, model: ModelName, stores: StoresDep) -> Response:
    """What deleting the model takes with it, and the button (with an extra tick when it is the
    active model)."""
    return await _confirm_delete(request, stores, model)


@router.post("/models/{model}/delete")
async def delete_model(
    request: Request,
    model: ModelName,
    stores: StoresDep,
    confirm: Annotated[str, Form()] = "",
    active: Annotated[str, Form()] = "",
) -> Response:
    """Delete once confirmed (the active model: once its tick is ticked too); else the
    confirmation again, with what is missing."""
    if confirm != "yes":
        return await _confirm_delete(request, stores, model)
    view = await model_service.get_model(stores, model)
    if view.info.is_active and active.lower() not in TRUE:
        return await _confirm_delete(
            request,
            stores,
            model,
            error="This is the project's active model: tick “yes, delete the active model” "
            "to delete it.",
        )
    info = await model_service.delete_model(stores, model, active_confirmed=True)
    return redirect(request, _models_url(info.dataset_name))


def _weights_response(info: ModelInfo, path: Any) -> FileResponse:
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{info.name}.pt",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/models/{model}/weights")
async def model_weights(model: ModelName, stores: StoresDep) -> FileResponse:
    """The model's weights (its best epoch's ``.pt``) as a download."""
    view = await model_service.get_model(stores, model)
    return _weights_response(view.info, await model_service.model_weights(stores, model))


def _onnx_response(model: str, path: Any) -> FileResponse:
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{model}.onnx",
        headers={"Cache-Control": "no-store"},
    )


@router.post("/models/{model}/onnx")
async def export_onnx(request: Request, model: ModelName, stores: StoresDep) -> Response:
    """Queue the model's export to ONNX; on to its task's page."""
    task = await model_service.start_onnx_export(stores, model)
    return redirect(request, f"/tasks/{task.id}")


@router.get("/models/{model}/onnx")
async def model_onnx(model: ModelName, stores: StoresDep) -> FileResponse:
    """The model's ONNX export as a download (404 until it has been exported)."""
    return _onnx_response(model, await model_service.onnx_file(stores, model))


def _upload_form(request: Request) -> AbstractAsyncContextManager[FormData]:
    """A model upload or a picture to try: weights are large, so the import limit."""
    return large_upload_form(request, what="a model", max_fields=10)


async def _upload(stores: Stores, project: str, form: FormData) -> ModelInfo:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise Invalid("Choose the .pt file of the model.")
    name = str(form.get("name") or "").strip() or (upload.filename.rsplit(".", 1)[0])
    return await model_service.upload_model(stores, project, name, upload.file, upload.filename)


@router.post("/projects/{name}/models")
async def upload_model(request: Request, name: str, stores: StoresDep) -> Response:
    """Register an uploaded ``.pt`` as a model; on to the models page. A refusal comes back in
    the upload form (422)."""
    async with _upload_form(request) as form:
        try:
            info = await _upload(stores, name, form)
        except Invalid as refusal:
            upload = {"name": str(form.get("name") or ""), "error": refusal.message}
            return await _models_page(
                request,
                stores,
                name,
                fragment="models/_upload.html",
                upload=upload,
                status_code=422,
            )
    return redirect(request, _models_url(info.dataset_name))


async def _try(request: Request, stores: Stores, project: str) -> TaskInfo:
    """Queue the active model on the form's picture."""
    settings: Settings = request.app.state.settings
    async with _upload_form(request) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Invalid("Choose a picture to try the model on.")
        return await model_service.start_try(
            stores, project, upload.file, upload.filename, max_bytes=settings.max_upload_bytes
        )


@router.post("/projects/{name}/models/try")
async def try_model(request: Request, name: str, stores: StoresDep) -> Response:
    """The active model on an uploaded picture (nothing saved); on to the task's page, which
    shows the picture with its boxes."""
    task = await _try(request, stores, name)
    return redirect(request, f"/tasks/{task.id}")


@router.get("/tries/{task_id}/picture")
async def tried_picture(task_id: TaskId, stores: StoresDep) -> FileResponse:
    """The picture a model was tried on, while it is kept (an hour)."""
    path = await model_service.tried_picture(stores, task_id)
    return FileResponse(path, headers={"Cache-Control": "no-store"})


# --- API --------------------------------------------------------------------------------------


class ModelOut(BaseModel):
    name: str
    project: str
    base_model: str
    epochs_completed: int
    best_map50: float | None
    active: bool
    created_at: float
    metrics: dict[str, Any]
    weights_url: str

    @classmethod
    def of(cls, info: ModelInfo) -> ModelOut:
        return cls(
            name=info.name,
            project=info.dataset_name,
            base_model=info.base_model,
            epochs_completed=info.epochs_completed,
            best_map50=info.best_map50,
            active=info.is_active,
            created_at=info.created_at,
            metrics=info.metrics,
            weights_url=f"/api/v1/models/{quote(info.name, safe='')}/weights",
        )


@api_router.post(
    "/projects/{name}/train", response_model=TaskOut, status_code=202, responses=DISK_FULL
)
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
    of 32), ``batch``, ``patience``; ``version`` trains on that ready dataset version instead
    of the project's current data (the model joins this project and records the version). 422
    with the reason when the project has no labelled train or val image, or the version is not
    ready."""
    return TaskOut.of(await training_service.start_training(stores, name, body))


@api_router.get("/tasks/{task_id}/epochs")
async def api_epochs(task_id: TaskId, stores: StoresDep) -> list[dict[str, Any]]:
    """A training's epochs so far: ``epoch`` and its losses, precision, recall, mAP50,
    mAP50-95."""
    return await training_service.training_epochs(stores, task_id)


@api_router.post(
    "/tasks/{task_id}/resume",
    response_model=TaskOut,
    status_code=202,
    responses={**error_responses(409), **DISK_FULL},
)
async def api_resume(task_id: TaskId, stores: StoresDep) -> TaskOut:
    """Queue a training that continues a cancelled or failed one from its last weights."""
    return TaskOut.of(await training_service.resume_training(stores, task_id))


@api_router.get("/projects/{name}/models", response_model=list[ModelOut])
async def api_models(name: str, stores: StoresDep) -> list[ModelOut]:
    """The project's models, newest first: metrics, base, whether it is the active one."""
    return [ModelOut.of(view.info) for view in await model_service.project_models(stores, name)]


@api_router.post("/models/{model}/activate", response_model=ModelOut)
async def api_activate(model: ModelName, stores: StoresDep) -> ModelOut:
    """Make the model its project's active one (the project's others become inactive)."""
    return ModelOut.of(await model_service.activate_model(stores, model))


@api_router.delete("/models/{model}", status_code=204, responses=error_responses(409))
async def api_delete(
    model: ModelName,
    stores: StoresDep,
    confirm_active: bool = Query(False, description="Needed to delete the active model."),
) -> Response:
    """Delete the model and its weights; the project's active model only with
    ``confirm_active=true`` (409 otherwise)."""
    await model_service.delete_model(stores, model, active_confirmed=confirm_active)
    return Response(status_code=204)


@api_router.get("/models/{model}/weights", response_class=FileResponse)
async def api_weights(model: ModelName, stores: StoresDep) -> FileResponse:
    """The model's weights (``.pt``)."""
    view = await model_service.get_model(stores, model)
    return _weights_response(view.info, await model_service.model_weights(stores, model))


@api_router.post("/models/{model}/onnx", response_model=TaskOut, status_code=202)
async def api_export_onnx(model: ModelName, stores: StoresDep) -> TaskOut:
    """Queue the export of the model to ONNX (at its training image size, on the CPU); once
    the task has succeeded, ``GET`` this URL for the file."""
    return TaskOut.of(await model_service.start_onnx_export(stores, model))


@api_router.get("/models/{model}/onnx", response_class=FileResponse)
async def api_onnx(model: ModelName, stores: StoresDep) -> FileResponse:
    """The model's ONNX export (``.onnx``); 404 until it has been exported."""
    return _onnx_response(model, await model_service.onnx_file(stores, model))


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "name": {"type": "string", "description": "defaults to the file's stem"},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}


@api_router.post(
    "/projects/{name}/models/try",
    response_model=TaskOut,
    status_code=202,
    responses=error_responses(413),
)
async def api_try(request: Request, name: str, stores: StoresDep) -> TaskOut:
    """Queue the project's active model on one picture (multipart ``file``); the task's result
    holds its boxes (``name``, ``confidence``, normalised ``x``, ``y``, ``w``, ``h``)."""
    return TaskOut.of(await _try(request, stores, name))


@api_router.post(
    "/projects/{name}/models",
    response_model=ModelOut,
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={**error_responses(413), **DISK_FULL},
)
async def api_upload(request: Request, name: str, stores: StoresDep) -> ModelOut:
    """Register an existing ``.pt`` as a model of the project (multipart ``file`` and
    ``name``); 422 for a file that is no PyTorch weights archive or a taken name."""
    async with _upload_form(request) as form:
        return ModelOut.of(await _upload(stores, name, form))


__all__ = ["api_router", "router"]
