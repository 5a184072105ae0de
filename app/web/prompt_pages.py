"""YOLO-World's text prompts: the project's prompts page (an editor, a text box a class with one
prompt a line; what YOLO-World needs and the uploads that provide it; the auto-label form that
runs it), and their JSON twins. A refusal comes back in its form with 422."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from app.config import Settings
from app.domain.errors import Invalid
from app.domain.prompts import MAX_PROMPT_CHARS, MAX_PROMPTS_PER_CLASS, prompt_lines
from app.domain.stores import Stores
from app.services import autolabel as autolabel_service
from app.services import preferences as preference_service
from app.services import prompts as prompt_service
from app.web.api_uploads import large_upload_form
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.render import redirect, render
from app.web.schemas import TaskOut

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["prompts"], dependencies=[Depends(require_csrf)])

FormText = Annotated[str, Form(max_length=32)]
PromptList = Annotated[
    list[Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]],
    Field(max_length=MAX_PROMPTS_PER_CLASS),
]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _prompts_url(project: str) -> str:
    return f"/projects/{quote(project, safe='')}/prompts"


async def _context(
    request: Request,
    stores: Stores,
    name: str,
    *,
    drafts: dict[int, str] | None = None,
    editor_error: str | None = None,
    saved: bool = False,
    run: dict[str, str] | None = None,
    run_error: str | None = None,
    upload_error: dict[str, str] | None = None,
) -> dict[str, Any]:
    classes = await prompt_service.class_prompts(stores, name)
    project = await stores.dataset.get(name)
    assert project is not None  # class_prompts raised NotFound otherwise
    texts = {c.position: "\n".join(p) for c, p in classes}
    return {
        "nav": "projects",
        "project": project,
        "classes": classes,
        "texts": {**texts, **(drafts or {})},
        "prompted": sum(1 for _, p in classes if p),
        "editor_error": editor_error,
        "saved": saved,
        "world": prompt_service.world_status(_settings(request)),
        "selections": autolabel_service.SELECTION_CHOICES,
        "run": run
        or {
            "selection": "unlabelled",
            "conf": f"{(await preference_service.autolabel_defaults(stores))['conf']:g}",
            "imgsz": "640",
        },
        "run_error": run_error,
        "upload_error": upload_error or {},
    }


@router.get("/projects/{name}/prompts", response_class=HTMLResponse)
async def prompts_page(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The prompts editor, what YOLO-World needs, and the auto-label form that runs it."""
    return render(request, "pages/prompts.html", await _context(request, stores, name))


@router.post("/projects/{name}/prompts")
async def save_prompts(request: Request, name: str, stores: StoresDep) -> Response:
    """Save every class's prompts (form fields ``prompts-<index>``, one prompt a line); with
    ``fill=names`` a class left without prompts gets its own name. The editor comes back
    (htmx) or the page again; a refusal keeps what was typed (422)."""
    form = await request.form(max_fields=2000)
    classes = await prompt_service.class_prompts(stores, name)
    drafts = {c.position: str(form.get(f"prompts-{c.position}", "")) for c, _ in classes}
    prompts = {index: prompt_lines(text) for index, text in drafts.items()}
    if form.get("fill") == "names":
        prompts = {c.position: prompts[c.position] or [c.name] for c, _ in classes}
    try:
        await prompt_service.save_prompts(stores, name, prompts)
    except Invalid as refusal:
        context = await _context(request, stores, name, drafts=drafts, editor_error=refusal.message)
        return render(
            request, "pages/prompts.html", context, fragment="prompts/_editor.html", status_code=422
        )
    context = await _context(request, stores, name, saved=True)
    return render(request, "pages/prompts.html", context, fragment="prompts/_editor.html")


@router.post("/projects/{name}/prompts/autolabel")
async def autolabel_with_prompts(
    request: Request,
    name: str,
    stores: StoresDep,
    selection: FormText = "unlabelled",
    conf: FormText = "",
    imgsz: FormText = "",
) -> Response:
    """Queue YOLO-World over the chosen images and go on to the task's page."""
    run = {"selection": selection, "conf": conf, "imgsz": imgsz}
    try:
        task = await prompt_service.start_prompt_autolabel(
            stores, _settings(request), name, {k: v.strip() for k, v in run.items() if v.strip()}
        )
    except Invalid as refusal:
        context = await _context(request, stores, name, run=run, run_error=refusal.message)
        return render(
            request, "pages/prompts.html", context, fragment="prompts/_run.html", status_code=422
        )
    return redirect(request, f"/tasks/{task.id}")


@router.post("/projects/{name}/prompts/files/{key}")
async def upload_world_file(request: Request, name: str, key: str, stores: StoresDep) -> Response:
    """Keep an uploaded YOLO-World or CLIP file and come back to the prompts page."""
    async with large_upload_form(request, what="a weights file", max_fields=10) as form:
        upload = form.get("file")
        try:
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise Invalid("Choose the .pt file to upload.")
            await prompt_service.upload_world_file(
                _settings(request), key, upload.file, upload.filename
            )
        except Invalid as refusal:
            context = await _context(
                request, stores, name, upload_error={"key": key, "message": refusal.message}
            )
            return render(
                request,
                "pages/prompts.html",
                context,
                fragment="prompts/_world.html",
                status_code=422,
            )
    return redirect(request, _prompts_url(name) + "#yolo-world")


# --- JSON -------------------------------------------------------------------------------------


class ClassPromptsOut(BaseModel):
    index: int
    name: str
    prompts: list[str]


class PromptsOut(BaseModel):
    project: str
    classes: list[ClassPromptsOut]


class PromptsUpdate(BaseModel):
    """Prompts by class index (as text keys in JSON); a class left out keeps its prompts, an
    empty list clears them."""

    prompts: dict[int, PromptList]


class RequirementOut(BaseModel):
    key: str
    title: str
    ready: bool
    where: str
    provide: str


class WorldStatusOut(BaseModel):
    ready: bool
    requirements: list[RequirementOut]


class PromptRunCreate(BaseModel):
    selection: str = Field("unlabelled", max_length=32)
    conf: float | None = None
    iou: float | None = None
    imgsz: int | None = None


async def _prompts_out(stores: Stores, name: str) -> PromptsOut:
    classes = await prompt_service.class_prompts(stores, name)
    project = await stores.dataset.get(name)
    assert project is not None
    return PromptsOut(
        project=project.name,
        classes=[ClassPromptsOut(index=c.position, name=c.name, prompts=p) for c, p in classes],
    )


@api_router.get("/projects/{name}/prompts", response_model=PromptsOut)
async def api_prompts(name: str, stores: StoresDep) -> PromptsOut:
    """Every class of the project with its YOLO-World prompts."""
    return await _prompts_out(stores, name)


@api_router.put("/projects/{name}/prompts", response_model=PromptsOut)
async def api_save_prompts(name: str, body: PromptsUpdate, stores: StoresDep) -> PromptsOut:
    """Replace the prompts of the classes given (mirrored to ``prompts.yaml``)."""
    await prompt_service.save_prompts(stores, name, body.prompts)
    return await _prompts_out(stores, name)


@api_router.get("/yolo-world", response_model=WorldStatusOut)
async def api_world_status(request: Request) -> WorldStatusOut:
    """Whether YOLO-World can run, and what to provide for each thing it lacks."""
    status = prompt_service.world_status(_settings(request))
    return WorldStatusOut(
        ready=status.ready,
        requirements=[
            RequirementOut(
                key=r.key, title=r.title, ready=r.ready, where=r.where, provide=r.provide
            )
            for r in status.requirements
        ],
    )


@api_router.post("/yolo-world/{key}", response_model=WorldStatusOut, responses=error_responses(413))
async def api_upload_world_file(request: Request, key: str) -> WorldStatusOut:
    """Upload the YOLO-World weights (``weights``) or the CLIP ViT-B/32 text encoder
    (``text_encoder``) as multipart ``file``."""
    async with large_upload_form(request, what="a weights file", max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Invalid("Send the .pt file as the multipart field 'file'.")
        await prompt_service.upload_world_file(
            _settings(request), key, upload.file, upload.filename
        )
    return await api_world_status(request)


@api_router.post("/projects/{name}/autolabel/prompts", response_model=TaskOut, status_code=202)
async def api_autolabel_with_prompts(
    request: Request, name: str, body: PromptRunCreate, stores: StoresDep
) -> TaskOut:
    """Queue YOLO-World with the project's prompts: their detections become pending
    suggestions (source ``prompt``). 422 with what to provide when YOLO-World is not ready."""
    params = body.model_dump(exclude_none=True)
    return TaskOut.of(
        await prompt_service.start_prompt_autolabel(stores, _settings(request), name, params)
    )
