"""Dataset versions over HTTP: ``/versions`` (each version with its recipe, sources, counts per
split and class, a building one's task panel, its zip, delete behind a confirmation page),
``/versions/new`` (projects, the class-mapping screen htmx loads once projects are chosen,
preprocessing, augmentation, seed, splits; a refusal comes back as the form with what was
typed kept, 422), ``/versions/{name}``, and the JSON API under ``/api/v1/versions``.

With accounts on, building a version needs an annotator (like an export: it reads projects and
writes a new folder, the projects stay as they are) and deleting one a reviewer.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import FormData

from app.domain.box_geometry import ResizeMode
from app.domain.errors import Invalid, NotFound
from app.domain.models import SPLITS
from app.domain.stores import Stores
from app.domain.versions import (
    MAX_OUTPUTS,
    MAX_ROTATION,
    READY,
    Augmentation,
    Preprocessing,
    VersionInfo,
)
from app.services import versions as version_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.render import redirect, render
from app.web.schemas import TaskOut
from app.web.system_pages import DISK_FULL

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["versions"], dependencies=[Depends(require_csrf)])

VersionName = Annotated[str, Path(min_length=1, max_length=200)]
MAX_FIELD = 200
KEEP, DROP, MERGE = "", "drop", "merge:"
BOOLEAN_FIELDS = {
    "auto_orient",
    "drop_empty",
    "flip_horizontal",
    "flip_vertical",
    "rotate90",
}
PRE_NUMBERS = {"resize": int, "tile": int, "tile_overlap": float, "tile_min_visible": float}
AUG_NUMBERS = {
    "outputs": int,
    "rotation": float,
    "brightness": float,
    "contrast": float,
    "blur": float,
    "noise": float,
    "grayscale": float,
}
# Which field a refusal is about, by the words the domain uses (first match wins).
ERROR_FIELDS = (
    ("version name", "name"),
    ("name", "name"),
    ("project", "projects"),
    ("class", "mapping"),
    ("resize mode", "resize_mode"),
    ("resize", "resize"),
    ("tile overlap", "tile_overlap"),
    ("tile min visible", "tile_min_visible"),
    ("tile", "tile"),
    ("outputs", "outputs"),
    ("operation", "outputs"),
    ("rotation", "rotation"),
    ("brightness", "brightness"),
    ("contrast", "contrast"),
    ("blur", "blur"),
    ("noise", "noise"),
    ("grayscale", "grayscale"),
    ("seed", "seed"),
    ("ratio", "ratios"),
    ("split", "split_mode"),
)


def _defaults() -> dict[str, str]:
    pre, aug = Preprocessing(), Augmentation()
    values = {
        "name": "",
        "auto_orient": "on" if pre.auto_orient else "",
        "resize": "",
        "resize_mode": pre.resize_mode.value,
        "tile": "",
        "tile_overlap": f"{pre.tile_overlap:g}",
        "tile_min_visible": f"{pre.tile_min_visible:g}",
        "drop_empty": "",
        "outputs": str(aug.outputs),
        "seed": "0",
        "split_mode": "keep",
    }
    values |= {k: "" for k in ("flip_horizontal", "flip_vertical", "rotate90")}
    values |= {k: "0" for k in ("rotation", "brightness", "contrast", "blur", "noise", "grayscale")}
    values |= {"ratio_train": "0.8", "ratio_val": "0.1", "ratio_test": "0.1"}
    return values


def _number(values: dict[str, str], key: str, kind: type, label: str) -> int | float | None:
    text = values.get(key, "").strip()
    if not text:
        return None
    try:
        return kind(text)  # type: ignore[no-any-return]
    except ValueError:
        whole = "a whole number" if kind is int else "a number"
        raise Invalid(f"{label} must be {whole}, not {text!r}.") from None


def recipe_from_form(values: dict[str, str]) -> dict[str, Any]:
    """The recipe a form sent, typed (the domain checks ranges and combinations)."""
    pre: dict[str, Any] = {
        "auto_orient": bool(values.get("auto_orient")),
        "drop_empty": bool(values.get("drop_empty")),
        "resize_mode": values.get("resize_mode") or ResizeMode.FIT_PAD.value,
    }
    for key, kind in PRE_NUMBERS.items():
        number = _number(values, key, kind, f"Preprocessing: {key.replace('_', ' ')}")
        if number is not None:
            pre[key] = number
    aug: dict[str, Any] = {k: bool(values.get(k)) for k in ("flip_horizontal", "flip_vertical")}
    aug["rotate90"] = bool(values.get("rotate90"))
    for key, kind in AUG_NUMBERS.items():
        number = _number(values, key, kind, f"Augmentation: {key}")
        if number is not None:
            aug[key] = number
    seed = _number(values, "seed", int, "The seed")
    ratios = {}
    for split in SPLITS:
        ratio = _number(values, f"ratio_{split}", float, f"The {split} ratio")
        ratios[split] = 0.0 if ratio is None else ratio
    recipe: dict[str, Any] = {
        "preprocessing": pre,
        "augmentation": aug,
        "seed": 0 if seed is None else seed,
        "split_mode": values.get("split_mode") or "keep",
    }
    if recipe["split_mode"] == "redraw":
        recipe["ratios"] = ratios
    return recipe


def choices_from_form(
    form: dict[str, str], classes: dict[str, list[str]]
) -> dict[str, dict[str, str | None]]:
    """The mapping screen's answers: ``map:<project>:<class index>`` is keep, drop or
    ``merge:<class>``; a non-blank ``rename:<project>:<class index>`` renames instead."""
    choices: dict[str, dict[str, str | None]] = {}
    for project, names in classes.items():
        for index, name in enumerate(names):
            renamed = form.get(f"rename:{project}:{index}", "").strip()
            picked = form.get(f"map:{project}:{index}", KEEP)
            if renamed:
                choices.setdefault(project, {})[name] = renamed
            elif picked == DROP:
                choices.setdefault(project, {})[name] = None
            elif picked.startswith(MERGE):
                choices.setdefault(project, {})[name] = picked.removeprefix(MERGE)
    return choices


def _error_field(message: str) -> str | None:
    lowered = message.casefold()
    for words, field in ERROR_FIELDS:
        if words in lowered:
            return field
    return None


def _form_values(form: FormData) -> tuple[dict[str, str], list[str]]:
    values: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key != "projects":
            values[key] = value[:MAX_FIELD]
    projects = [p[:MAX_FIELD] for p in form.getlist("projects") if isinstance(p, str)]
    return values, projects


async def _form_context(
    stores: Stores,
    values: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    *,
    error: str | None = None,
) -> dict[str, Any]:
    projects = [p.name for p in await stores.dataset.list()]
    chosen = chosen or []
    overview = None
    if chosen:
        try:
            overview = await version_service.class_overview(stores, chosen)
        except (Invalid, NotFound):  # a project deleted meanwhile: no mapping to show
            overview = None
    return {
        "nav": "versions",
        "projects": projects,
        "chosen": chosen,
        "overview": overview,
        "values": {**_defaults(), **(values or {})},
        "error": error,
        "error_field": _error_field(error) if error else None,
        "resize_modes": [m.value for m in ResizeMode],
        "max_outputs": MAX_OUTPUTS,
        "max_rotation": MAX_ROTATION,
        "splits": SPLITS,
        "keep": KEEP,
        "drop": DROP,
        "merge": MERGE,
    }


def _summary(version: VersionInfo) -> list[str]:
    """The recipe in a few words, for the list."""
    recipe = version.recipe
    pre, aug = recipe.get("preprocessing", {}), recipe.get("augmentation", {})
    parts = []
    if pre.get("auto_orient"):
        parts.append("auto-orient")
    if pre.get("tile"):
        parts.append(
            f"tiles of {pre['tile']} px, {pre.get('tile_overlap', 0):g} overlap, "
            f"boxes kept above {pre.get('tile_min_visible', 0):.0%}"
        )
    if pre.get("resize"):
        parts.append(f"resize to {pre['resize']} px ({pre.get('resize_mode', '')})")
    if pre.get("drop_empty"):
        parts.append("images without boxes dropped")
    if aug.get("outputs"):
        flags = ("flip_horizontal", "flip_vertical", "rotate90")
        ops = [k.replace("_", " ") for k in flags if aug.get(k)]
        ops += [
            f"{k} {aug[k]:g}"
            for k in ("rotation", "brightness", "contrast", "blur", "noise", "grayscale")
            if aug.get(k)
        ]
        copies = "1 augmented copy" if aug["outputs"] == 1 else f"{aug['outputs']} augmented copies"
        parts.append(f"{copies} per train image: {', '.join(ops)}")
    parts.append(f"seed {recipe.get('seed', 0)}")
    if recipe.get("split_mode") == "redraw":
        ratios = recipe.get("ratios", {})
        parts.append("splits redrawn " + "/".join(f"{ratios.get(s, 0):g}" for s in SPLITS))
    else:
        parts.append("splits kept")
    return parts


async def _version_context(stores: Stores, version: VersionInfo) -> dict[str, Any]:
    task = None
    if version.status != READY and version.task_id is not None:
        try:
            task = await stores.task.get(version.task_id)
        except NotFound:
            task = None
    classes = version.classes
    boxes = version.counts.get("boxes", {})
    return {
        "version": version,
        "summary": _summary(version),
        "task": task,
        "class_rows": [(c, [boxes.get(s, {}).get(c, 0) for s in SPLITS]) for c in classes],
        "url": f"/versions/{quote(version.name)}",
    }


# --- pages ------------------------------------------------------------------------------------


@router.get("/versions", response_class=HTMLResponse)
async def versions_page(request: Request, stores: StoresDep) -> HTMLResponse:
    """Every version, newest first."""
    versions = await version_service.list_versions(stores)
    items = [await _version_context(stores, v) for v in versions]
    return render(
        request,
        "versions/list.html",
        {"nav": "versions", "items": items, "splits": SPLITS},
        fragment="versions/_list.html",
    )


@router.get("/versions/new", response_class=HTMLResponse)
async def new_version_page(
    request: Request,
    stores: StoresDep,
    projects: Annotated[list[str] | None, Query(max_length=50)] = None,
) -> HTMLResponse:
    """The form; ``?projects=a&projects=b`` chooses projects (and shows their classes)."""
    context = await _form_context(stores, chosen=[p[:MAX_FIELD] for p in projects or []])
    return render(request, "versions/new.html", context)


@router.get("/versions/new/classes", response_class=HTMLResponse)
async def mapping_fragment(
    request: Request,
    stores: StoresDep,
    projects: Annotated[list[str] | None, Query(max_length=50)] = None,
) -> HTMLResponse:
    """The class-mapping screen of the chosen projects (htmx swaps it in as they change)."""
    context = await _form_context(stores, chosen=[p[:MAX_FIELD] for p in projects or []])
    return render(request, "versions/_mapping.html", context)


@router.post("/versions/new")
async def create_version(request: Request, stores: StoresDep) -> Response:
    """Queue the build; on to the versions page. A refusal: the form again, what was typed
    kept, the message beside its field (422)."""
    form = await request.form()
    values, projects = _form_values(form)
    try:
        recipe = recipe_from_form(values)
        overview = await version_service.class_overview(stores, projects)
        choices = choices_from_form(values, overview.classes)
        await version_service.start_version(
            stores, values.get("name", "").strip(), projects, recipe, choices
        )
    except (Invalid, NotFound) as refusal:  # NotFound: a project deleted meanwhile
        context = await _form_context(stores, values, projects, error=str(refusal))
        return render(request, "versions/new.html", context, status_code=422)
    return redirect(request, "/versions")


@router.get("/versions/{name}", response_class=HTMLResponse)
async def version_page(request: Request, name: VersionName, stores: StoresDep) -> HTMLResponse:
    """One version: its recipe, sources, classes and counts, its build's progress."""
    version = await version_service.get_version(stores, name)
    item = await _version_context(stores, version)
    context = {"nav": "versions", "splits": SPLITS, "item": item, "standalone": True}
    return render(request, "versions/detail.html", context, fragment="versions/_card.html")


@router.get("/versions/{name}/delete", response_class=HTMLResponse)
async def confirm_delete_page(
    request: Request, name: VersionName, stores: StoresDep
) -> HTMLResponse:
    """Ask before deleting: what goes (the version's folder) and what stays (the projects)."""
    version = await version_service.get_version(stores, name)
    context = {"nav": "versions", "item": await _version_context(stores, version)}
    return render(request, "versions/confirm_delete.html", context)


@router.post("/versions/{name}/delete")
async def delete_version(request: Request, name: VersionName, stores: StoresDep) -> Response:
    """Delete the version (its folder; never the projects' images); on to the list."""
    await version_service.delete_version(stores, name)
    return redirect(request, "/versions")


def _zip_response(version: VersionInfo) -> StreamingResponse:
    if version.status != READY:
        raise Invalid(f"Version {version.name!r} is {version.status}: only a ready one zips.")
    filename = f"{version.name}.zip"
    return StreamingResponse(
        version_service.zip_chunks(version.path),
        media_type="application/zip",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        },
    )


@router.get("/versions/{name}/export")
async def export_version_page(name: VersionName, stores: StoresDep) -> StreamingResponse:
    """The version as a zip (the Ultralytics layout), made as it is sent."""
    return _zip_response(await version_service.get_version(stores, name))


# --- API --------------------------------------------------------------------------------------


class VersionIn(BaseModel):
    """A version to build: ``projects`` in order; ``recipe`` (``preprocessing``,
    ``augmentation``, ``seed``, ``split_mode`` keep/redraw, ``ratios``; unknown keys refused);
    ``choices`` per project, class name -> the class to merge into or a new name, or null to
    drop it (classes whose names agree ignoring case and spaces are one without a choice)."""

    name: str = Field(min_length=1, max_length=64)
    projects: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=20)
    recipe: dict[str, Any] = Field(default_factory=dict)
    choices: dict[str, dict[str, str | None]] = Field(default_factory=dict)


class VersionOut(BaseModel):
    name: str
    status: str
    projects: list[str]
    choices: dict[str, Any]
    recipe: dict[str, Any]
    classes: list[str]
    counts: dict[str, Any]
    created_at: float
    ready_at: float | None
    task_id: int | None
    error: str | None

    @classmethod
    def of(cls, version: VersionInfo) -> VersionOut:
        return cls(
            name=version.name,
            status=version.status,
            projects=version.projects,
            choices=dict(version.sources.get("choices") or {}),
            recipe=version.recipe,
            classes=version.classes,
            counts=version.counts,
            created_at=version.created_at,
            ready_at=version.ready_at,
            task_id=version.task_id,
            error=version.error,
        )


class VersionStartedOut(BaseModel):
    version: VersionOut
    task: TaskOut


@api_router.get("/versions", response_model=list[VersionOut])
async def api_list_versions(stores: StoresDep) -> list[VersionOut]:
    """Every dataset version, newest first."""
    return [VersionOut.of(v) for v in await version_service.list_versions(stores)]


@api_router.post(
    "/versions",
    response_model=VersionStartedOut,
    status_code=202,
    responses={**error_responses(404), **DISK_FULL},
)
async def api_create_version(body: VersionIn, stores: StoresDep) -> VersionStartedOut:
    """Build a dataset version from projects by a recipe: a task (follow it under
    ``/api/v1/tasks/{id}``) writes ``storage/versions/<name>/``. 422 for a bad name, project
    list, mapping or recipe, 404 for an unknown project; nothing is queued then."""
    version, task = await version_service.start_version(
        stores, body.name.strip(), body.projects, body.recipe, body.choices
    )
    return VersionStartedOut(version=VersionOut.of(version), task=TaskOut.of(task))


@api_router.get("/versions/{name}", response_model=VersionOut)
async def api_get_version(name: VersionName, stores: StoresDep) -> VersionOut:
    """One version: recipe, sources, classes, counts per split and class, status."""
    return VersionOut.of(await version_service.get_version(stores, name))


@api_router.delete("/versions/{name}", status_code=204, responses=error_responses(409))
async def api_delete_version(name: VersionName, stores: StoresDep) -> Response:
    """Delete the version and its folder (never the projects' images). 409 while it is being
    built or a queued or running training will read it."""
    await version_service.delete_version(stores, name)
    return Response(status_code=204)


@api_router.get(
    "/versions/{name}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The zip."}},
)
async def api_export_version(name: VersionName, stores: StoresDep) -> StreamingResponse:
    """The version as a zip in the Ultralytics layout (``data.yaml``, ``images/<split>/``,
    ``labels/<split>/``), stored not deflated, streamed as it is made. 422 while not ready."""
    return _zip_response(await version_service.get_version(stores, name))
