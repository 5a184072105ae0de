"""The annotator: one image's boxes drawn and edited in the browser (``static/annotator.js``).

The page is rendered here with everything the script starts from (the image, the classes, the
labels, the pending suggestions, the version and the neighbours under the grid's filter) in a
``<script type="application/json">`` block: the content policy allows no inline script. Saving
goes through the labels JSON API (``PUT /api/v1/projects/{name}/images/{filename}/labels``)
with the version read here, so a stale page gets a 409 instead of overwriting a newer save.

The previous and next image follow the grid's filters (``split``, ``state``, ``class_id``,
``q``: ``GridQuery``), carried from page to page in the query string.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from app.domain.models import Annotation, ImageInfo
from app.domain.preferences import key_label, keymap_rows
from app.services import images as image_service
from app.services import labels as label_service
from app.services import preferences as preference_service
from app.services import projects as project_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.image_pages import GridFilters, GridQuery
from app.web.render import render
from app.web.urls import image_page_url, image_url

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)


def _part(text: str) -> str:
    return quote(text, safe="")


def annotate_url(project: str, filename: str, query: GridQuery | None = None) -> str:
    """The annotator of ``filename``, keeping the grid's filters."""
    params = query.params() if query is not None else ""
    url = f"/projects/{_part(project)}/annotate/{_part(filename)}"
    return f"{url}?{params}" if params else url


def labels_api_url(project: str, filename: str) -> str:
    """The labels JSON API of one image (GET the labels, PUT a new set)."""
    return f"/api/v1/projects/{_part(project)}/images/{_part(filename)}/labels"


def _box(ann: Annotation) -> dict[str, Any]:
    """A box as the labels API writes it."""
    return {
        "id": ann.id,
        "class_id": ann.class_id,
        "x": ann.x,
        "y": ann.y,
        "width": ann.width,
        "height": ann.height,
        "source": ann.source,
        "confidence": ann.confidence,
        "model": ann.model,
    }


def _neighbour(project: str, filename: str | None, query: GridQuery) -> dict[str, str] | None:
    if filename is None:
        return None
    return {
        "filename": filename,
        "url": annotate_url(project, filename, query),
        "labels_url": labels_api_url(project, filename),
    }


def key_hints(keymap: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Each action's keys as the page's titles and labels show them: ``D or →`` (empty for an
    action without a key)."""
    return {name: " or ".join(key_label(k) for k in keys) for name, keys in keymap.items()}


def _grid_url(project: str, query: GridQuery) -> str:
    params = query.params()
    return f"/projects/{_part(project)}/images" + (f"?{params}" if params else "")


@router.get("/projects/{name}/annotate/{filename}", response_class=HTMLResponse)
async def annotate_page(
    request: Request,
    name: str,
    filename: str,
    stores: StoresDep,
    query: GridFilters,
) -> HTMLResponse:
    """The annotator for one image; previous and next follow the grid's filters, or with
    ``order=uncertain`` the review queue's least-confident-first order."""
    project = await project_service.get_project(stores, name)
    found = await label_service.image_labels(stores, project.name, filename)
    image: ImageInfo = found.image
    if query.order == "uncertain":
        previous, following = await label_service.uncertain_neighbours(
            stores, project.name, image.filename
        )
    else:
        previous, following = await image_service.neighbours(
            stores, project.name, image.filename, query.image_filter()
        )
    prefs = await preference_service.get_preferences(stores)
    data = {
        "project": project.name,
        "filename": image.filename,
        "split": image.split,
        "width": image.width,
        "height": image.height,
        "missing": image.missing,
        "image_url": image_url(image),
        "labels_url": labels_api_url(project.name, image.filename),
        "version": image.version,
        "no_objects": image.no_objects,
        "labels": [_box(b) for b in found.labels],
        "suggestions": [_box(b) for b in found.suggestions],
        "classes": [
            {"id": c.id, "position": c.position, "name": c.name, "colour": c.colour}
            for c in sorted(project.class_details, key=lambda c: c.position)
        ],
        "previous": _neighbour(project.name, previous, query),
        "next": _neighbour(project.name, following, query),
        "keymap": keymap_rows(prefs.keymap),  # the settings page's keys
    }
    context = {
        "nav": "projects",
        "project": project,
        "image": image,
        "classes": data["classes"],
        "query": query,
        "data": data,
        "grid_url": _grid_url(project.name, query),
        "image_page": image_page_url(image),
        "previous": data["previous"],
        "next": data["next"],
        "keys": key_hints(prefs.keymap),
    }
    return render(request, "pages/annotate.html", context, fragment="annotate/_annotator.html")
