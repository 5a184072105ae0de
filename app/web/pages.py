"""Server-rendered pages: the projects list and a project's page with its class editor.

Every GET renders the full page, or only its fragment when htmx asks (``render``). Every form
POSTs with the CSRF field; a class action answers htmx with the fresh editor fragment and everyone
else with a 303 back to the project page (post/redirect/get). Input the user can fix (a bad or
taken name) re-renders the form with the message inline and status 422; any other domain error
goes to the global handler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from app.domain.errors import AlreadyExists, Invalid
from app.domain.models import SPLITS, ClassUsage, DatasetInfo
from app.domain.splits import validate_ratios
from app.domain.validation import validate_project_name
from app.services import preferences as preference_service
from app.services import projects as project_service
from app.services.source import source_zip
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.render import is_htmx, redirect, render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

DESCRIPTION_MAX = 2000  # as the API's ProjectCreate
# Bounded so an absurd id is a 422, not a database overflow.
ClassId = Annotated[int, Path(ge=1, le=2**63 - 1)]
FormText = Annotated[str, Form()]


@dataclass
class EditorError:
    """A class action the user can fix: the message, the class it concerns (``None`` for the
    add form) and what they typed, so the editor shows both next to that form."""

    message: str
    class_id: int | None = None
    value: str = ""


def _class_lines(text: str) -> list[str]:
    """Class names from the textarea: one per line, blank lines ignored."""
    return [line for line in text.splitlines() if line.strip()]


def _form_ratios(typed: dict[str, str]) -> dict[str, float] | None:
    """The create form's split ratios (``None`` when all three are blank: the defaults)."""
    raw = {split: typed.get(split, "").strip() for split in SPLITS}
    if not any(raw.values()):
        return None
    try:
        ratios = {split: float(text) for split, text in raw.items()}
    except ValueError:
        raise Invalid(
            "Split ratios must be numbers from 0 to 1 adding up to 1 (or leave all three blank "
            "for the defaults of the settings page)."
        ) from None
    if not all(math.isfinite(r) for r in ratios.values()):
        raise Invalid("Split ratios must be numbers from 0 to 1.")
    return validate_ratios(ratios)


def _create_error_field(
    error: Invalid, name: str, description: str, typed: dict[str, str] | None = None
) -> str:
    """Which field of the create form the message belongs to."""
    if len(description) > DESCRIPTION_MAX:
        return "description"
    try:
        _form_ratios(typed or {})
    except Invalid:
        return "ratios"
    if isinstance(error, AlreadyExists):
        return "name"
    try:
        validate_project_name(name)
    except Invalid:
        return "name"
    return "classes"


def project_context(project: DatasetInfo, **extra: Any) -> dict[str, Any]:
    """What the project page needs: its class editor, splits, upload and export boxes."""
    return {
        "nav": "projects",
        "project": project,
        "classes": project.class_details,
        "total_images": sum(project.num_images.values()),
        "editor_error": None,
        "splits": SPLITS,
        "upload_results": None,
        **extra,
    }


# --- projects list ---------------------------------------------------------------------------


async def _projects_page(
    request: Request,
    stores: StoresDep,
    *,
    fragment: str,
    form: dict[str, str] | None = None,
    error: str | None = None,
    error_field: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    projects = await stores.dataset.list()
    ratios = await preference_service.default_ratios(stores)  # the settings page's defaults
    blank = {"name": "", "classes": "", "description": ""}
    context = {
        "nav": "projects",
        "projects": projects,
        "form": form or blank | {split: f"{ratios[split]:g}" for split in SPLITS},
        "error": error,
        "error_field": error_field,
    }
    return render(request, "pages/index.html", context, fragment=fragment, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, stores: StoresDep) -> HTMLResponse:
    """The projects, and a form to create one."""
    return await _projects_page(request, stores, fragment="projects/_list.html")


@router.post("/projects")
async def create_project(
    request: Request,
    stores: StoresDep,
    name: FormText = "",
    classes: FormText = "",
    description: FormText = "",
    train: FormText = "",
    val: FormText = "",
    test: FormText = "",
) -> Response:
    """Create a project from the form; a bad name, class list or ratio comes back inline (422).
    Ratios left blank are the preferences' defaults."""
    typed = {"name": name, "classes": classes, "description": description}
    typed |= {"train": train, "val": val, "test": test}
    try:
        if len(description) > DESCRIPTION_MAX:
            raise Invalid(
                f"The description is {len(description)} characters long; "
                f"at most {DESCRIPTION_MAX} are allowed."
            )
        info = await project_service.create_project(
            stores,
            name.strip(),
            _class_lines(classes),
            description.strip(),
            ratios=_form_ratios(typed),
        )
    except Invalid as error:
        return await _projects_page(
            request,
            stores,
            fragment="projects/_create_form.html",
            form=typed,
            error=error.message,
            error_field=_create_error_field(error, name.strip(), description, typed),
            status_code=422,
        )
    return redirect(request, f"/projects/{info.name}")


# --- a project -------------------------------------------------------------------------------


@router.get("/projects/{name}", response_class=HTMLResponse)
async def project_page(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The project: its counts, the class editor (the fragment htmx gets) and export."""
    project = await project_service.get_project(stores, name)
    return render(
        request, "pages/project.html", project_context(project), fragment="projects/_classes.html"
    )


async def _confirm_project_delete(request: Request, stores: StoresDep, name: str) -> HTMLResponse:
    project = await project_service.get_project(stores, name)
    usage = await project_service.project_usage(stores, project.name)
    return render(
        request,
        "pages/confirm_delete_project.html",
        project_context(project, usage=usage),
        fragment="projects/_confirm_delete_project.html",
    )


@router.get("/projects/{name}/delete", response_class=HTMLResponse)
async def confirm_delete_project(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """What deleting the project would take with it, and the button that does it."""
    return await _confirm_project_delete(request, stores, name)


@router.post("/projects/{name}/delete")
async def delete_project(
    request: Request, name: str, stores: StoresDep, confirm: FormText = ""
) -> Response:
    """Delete the project once confirmed; without ``confirm=yes`` show the confirmation."""
    if confirm != "yes":
        return await _confirm_project_delete(request, stores, name)
    await project_service.delete_project(stores, name)
    return redirect(request, "/")


# --- the class editor ------------------------------------------------------------------------


async def _editor(
    request: Request, stores: StoresDep, name: str, *, error: EditorError | None = None
) -> Response:
    """After a class action: the editor fragment for htmx (with ``error`` inline, 422), a 303
    back to the project page otherwise (or, on an error, the page with the message)."""
    project = await project_service.get_project(stores, name)
    if error is None and not is_htmx(request):
        return redirect(request, f"/projects/{project.name}")
    return render(
        request,
        "pages/project.html",
        project_context(project, editor_error=error),
        fragment="projects/_classes.html",
        status_code=422 if error else 200,
    )


@router.post("/projects/{name}/classes")
async def add_class(
    request: Request, name: str, stores: StoresDep, class_name: FormText = ""
) -> Response:
    """Append a class."""
    try:
        await project_service.add_class(stores, name, class_name)
    except Invalid as error:
        return await _editor(
            request, stores, name, error=EditorError(error.message, None, class_name)
        )
    return await _editor(request, stores, name)


@router.post("/projects/{name}/classes/{class_id}/rename")
async def rename_class(
    request: Request, name: str, class_id: ClassId, stores: StoresDep, class_name: FormText = ""
) -> Response:
    """Rename a class (its labels stay)."""
    try:
        await project_service.rename_class(stores, name, class_id, class_name)
    except Invalid as error:
        return await _editor(
            request, stores, name, error=EditorError(error.message, class_id, class_name)
        )
    return await _editor(request, stores, name)


@router.post("/projects/{name}/classes/{class_id}/colour")
async def recolour_class(
    request: Request, name: str, class_id: ClassId, stores: StoresDep, colour: FormText = ""
) -> Response:
    """Set a class's colour."""
    try:
        await project_service.recolour_class(stores, name, class_id, colour)
    except Invalid as error:
        return await _editor(request, stores, name, error=EditorError(error.message, class_id))
    return await _editor(request, stores, name)


@router.post("/projects/{name}/classes/{class_id}/move")
async def move_class(
    request: Request,
    name: str,
    class_id: ClassId,
    stores: StoresDep,
    position: Annotated[int, Form(ge=0, le=1_000_000)],
) -> Response:
    """Move a class to ``position`` (its new YOLO index); the label files follow."""
    await project_service.move_class(stores, name, class_id, position)
    return await _editor(request, stores, name)


@router.post("/projects/{name}/classes/{class_id}/merge")
async def merge_class(
    request: Request,
    name: str,
    class_id: ClassId,
    stores: StoresDep,
    target_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
) -> Response:
    """Move the class's labels to ``target_id``, then delete it."""
    try:
        await project_service.merge_classes(stores, name, class_id, target_id)
    except Invalid as error:
        return await _editor(request, stores, name, error=EditorError(error.message, class_id))
    return await _editor(request, stores, name)


async def _confirm_class_delete(
    request: Request, stores: StoresDep, name: str, class_id: int, usage: ClassUsage | None = None
) -> HTMLResponse:
    project = await project_service.get_project(stores, name)
    cls = project_service.find_class(project.name, project.class_details, class_id)
    if usage is None:
        usage = await project_service.class_usage(stores, project.name, class_id)
    return render(
        request,
        "pages/confirm_delete_class.html",
        project_context(project, cls=cls, usage=usage),
        fragment="projects/_confirm_delete_class.html",
    )


@router.get("/projects/{name}/classes/{class_id}/delete", response_class=HTMLResponse)
async def confirm_delete_class(
    request: Request, name: str, class_id: ClassId, stores: StoresDep
) -> HTMLResponse:
    """How many labels and suggestions go with the class, and the button that deletes it."""
    return await _confirm_class_delete(request, stores, name, class_id)


@router.post("/projects/{name}/classes/{class_id}/delete")
async def delete_class(
    request: Request, name: str, class_id: ClassId, stores: StoresDep, confirm: FormText = ""
) -> Response:
    """Delete a class. One with labels or suggestions needs ``confirm=yes``; without it the
    confirmation is shown and nothing changes."""
    if confirm != "yes":
        usage = await project_service.class_usage(stores, name, class_id)
        if usage.labels or usage.suggestions:
            return await _confirm_class_delete(request, stores, name, class_id, usage)
    await project_service.delete_class(stores, name, class_id)
    return await _editor(request, stores, name)


# --- source ----------------------------------------------------------------------------------


@router.get("/source")
async def source() -> Response:
    """The source of this server, as the AGPL requires."""
    return Response(
        source_zip(),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="ydc-source.zip"'},
    )
