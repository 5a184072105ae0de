"""Image pages: upload on the project page, the image grid (filters that combine, infinite
scroll, bulk move and delete), one image's page, and rebalancing the splits.

Every form works without JavaScript (post/redirect/get, confirmations as pages); htmx and
``static/upload.js`` / ``static/grid.js`` make them work in place. The grid's filters are query
parameters, so a filtered grid has a URL to share or reload; an empty parameter means "any".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.domain.errors import Invalid
from app.domain.models import SPLITS, ImageFilter, ImageState
from app.domain.preferences import key_label
from app.services import images as image_service
from app.services import ingest as ingest_service
from app.services import labels as label_service
from app.services import preferences as preference_service
from app.services import projects as project_service
from app.services import tasks as task_service
from app.web.api_uploads import store_upload
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.formatting import plural
from app.web.pages import project_context
from app.web.render import is_htmx, redirect, render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

GRID_PAGE = 120  # thumbnails per page of the infinite scroll
MAX_NAME_QUERY = 200
ORDERS = ("uncertain",)  # besides upload order
QueryText = Annotated[str, Query()]
FormText = Annotated[str, Form()]
FormNames = Annotated[list[str], Form()]
STATE_LABELS = {
    ImageState.LABELLED: "Labelled",
    ImageState.UNLABELLED: "Unlabelled",
    ImageState.NO_OBJECTS: "No objects",
    ImageState.SUGGESTIONS: "Has suggestions",
    ImageState.MISSING: "Missing on disk",
}


@dataclass(frozen=True)
class GridQuery:
    """The grid's filters as the page's URL and forms carry them (``None``: any)."""

    split: str | None = None
    state: str | None = None
    class_id: int | None = None
    q: str | None = None
    session: int | None = None  # frames of one capture session
    order: str | None = None  # "uncertain": the annotator walks least confident first

    @classmethod
    def parse(
        cls, split: str, state: str, class_id: str, q: str, session: str = "", order: str = ""
    ) -> GridQuery:
        """Read the filters; a value no filter knows is an ``Invalid`` that says which."""
        split, state, class_id, q = split.strip(), state.strip(), class_id.strip(), q.strip()
        session, order = session.strip(), order.strip()
        if order and order not in ORDERS:
            raise Invalid(f"'{order}' is not an order the annotator walks in (uncertain).")
        if split and split not in SPLITS:
            raise Invalid(f"There is no split '{split}': choose train, val or test.")
        if state and state not in {s.value for s in ImageState}:
            raise Invalid(f"'{state}' is not a labelling state ydc filters on.")
        if class_id and not (class_id.isdigit() and 1 <= int(class_id) < 2**63):
            raise Invalid(f"'{class_id}' is not a class id.")
        if len(q) > MAX_NAME_QUERY:
            raise Invalid(f"Search for at most {MAX_NAME_QUERY} characters of a file name.")
        if session and not (session.isdigit() and 1 <= int(session) < 2**63):
            raise Invalid(f"'{session}' is not a capture session's number.")
        return cls(
            split or None,
            state or None,
            int(class_id) if class_id else None,
            q or None,
            int(session) if session else None,
            order or None,
        )

    def image_filter(self) -> ImageFilter:
        state = ImageState(self.state) if self.state else None
        return ImageFilter(
            split=self.split,
            state=state,
            class_id=self.class_id,
            name=self.q,
            session_id=self.session,
        )

    def params(self, **extra: Any) -> str:
        """The filters (and ``extra``) as a query string, empty values left out."""
        given = {k: v for k, v in {**asdict(self), **extra}.items() if v not in (None, "")}
        return urlencode(given)

    @property
    def active(self) -> bool:
        return any(v is not None for v in asdict(self).values())


def _project_url(name: str, tail: str = "") -> str:
    return f"/projects/{quote(name, safe='')}{tail}"


def _grid_url(name: str, query: GridQuery, **extra: Any) -> str:
    params = query.params(**extra)
    return _project_url(name, "/images") + (f"?{params}" if params else "")


def _cursor(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not (text.isdigit() and int(text) < 2**63):
        raise Invalid(f"'{text}' is not a position in the grid.")
    return int(text)


def _query_filters(
    split: QueryText = "",
    state: QueryText = "",
    class_id: QueryText = "",
    q: QueryText = "",
    session: QueryText = "",
    order: QueryText = "",
) -> GridQuery:
    return GridQuery.parse(split, state, class_id, q, session, order)


def _form_filters(
    split: FormText = "",
    state: FormText = "",
    class_id: FormText = "",
    q: FormText = "",
    session: FormText = "",
    order: FormText = "",
) -> GridQuery:
    return GridQuery.parse(split, state, class_id, q, session, order)


# The grid's filters from the URL (pages) or from the bulk form's hidden fields (its posts).
GridFilters = Annotated[GridQuery, Depends(_query_filters)]
GridFormFilters = Annotated[GridQuery, Depends(_form_filters)]


# --- the grid --------------------------------------------------------------------------------


def _annotate_keys(keymap: dict[str, tuple[str, ...]]) -> str:
    """The annotator's previous / next keys for the grid's hint (``A / D``); empty when one
    of them has no key."""
    previous, following = keymap.get("previous", ()), keymap.get("next", ())
    if not previous or not following:
        return ""
    return f"{key_label(previous[0])} / {key_label(following[0])}"


async def _grid(
    request: Request,
    stores: StoresDep,
    name: str,
    query: GridQuery,
    *,
    cursor: int | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    project = await project_service.get_project(stores, name)
    page = await image_service.list_images(
        stores, project.name, query.image_filter(), cursor, GRID_PAGE
    )
    prefs = await preference_service.get_preferences(stores)
    context = {
        "nav": "projects",
        "project": project,
        "classes": project.class_details,
        "query": query,
        "page": page,
        "thumbnail_size": prefs.thumbnail_size,  # the settings page's, as --tile-size
        "tile_size": prefs.thumbnail_css,
        "annotate_keys": _annotate_keys(prefs.keymap),
        "cursor": cursor,
        "notice": notice,
        "splits": SPLITS,
        "states": STATE_LABELS,
        "grid_url": _grid_url(project.name, query),
        "next_url": (
            _grid_url(project.name, query, cursor=page.next_cursor) if page.next_cursor else None
        ),
    }
    # A next page (the infinite scroll asking) is only its tiles; a filter change the results.
    fragment = "images/_tiles.html" if cursor is not None else "images/_results.html"
    return render(request, "pages/images.html", context, fragment=fragment)


@router.get("/projects/{name}/images", response_class=HTMLResponse)
async def image_grid(
    request: Request,
    name: str,
    stores: StoresDep,
    query: GridFilters,
    cursor: QueryText = "",
) -> HTMLResponse:
    """The project's images as thumbnails, filtered, a page at a time."""
    return await _grid(request, stores, name, query, cursor=_cursor(cursor))


def _selected(filenames: list[str]) -> list[str]:
    chosen = [f for f in filenames if f]
    if not chosen:
        raise Invalid("Select at least one image first.")
    return chosen


@router.post("/projects/{name}/images/move")
async def move_images(
    request: Request,
    name: str,
    stores: StoresDep,
    query: GridFormFilters,
    to_split: FormText = "",
    filenames: FormNames = [],  # noqa: B006 (FastAPI copies defaults)
) -> Response:
    """Move the selected images (and their label files) to ``to_split`` and pin them there."""
    if to_split not in SPLITS:
        raise Invalid("Choose the split to move the images to: train, val or test.")
    chosen = _selected(filenames)
    moved = await image_service.move_images(stores, name, chosen, to_split)
    if not is_htmx(request):
        return redirect(request, _grid_url(name, query))
    notice = f"Moved {plural(moved, 'image')} to {to_split}."
    if moved < len(chosen):
        stayed = len(chosen) - moved
        notice += f" {plural(stayed, 'image')} {'was' if stayed == 1 else 'were'} in it already."
    return await _grid(request, stores, name, query, notice=notice)


@router.post("/projects/{name}/images/delete")
async def delete_images(
    request: Request,
    name: str,
    stores: StoresDep,
    query: GridFormFilters,
    confirm: FormText = "",
    filenames: FormNames = [],  # noqa: B006
) -> Response:
    """Delete the selected images with their labels once confirmed; without ``confirm=yes``
    show what would go."""
    chosen = list(dict.fromkeys(_selected(filenames)))
    if confirm != "yes":
        project = await project_service.get_project(stores, name)
        context = {
            "nav": "projects",
            "project": project,
            "filenames": chosen,
            "query": query,
            "grid_url": _grid_url(project.name, query),
        }
        return render(
            request,
            "pages/confirm_delete_images.html",
            context,
            fragment="images/_confirm_delete.html",
        )
    deleted = await image_service.delete_images(stores, name, chosen)
    if not is_htmx(request):
        return redirect(request, _grid_url(name, query))
    return await _grid(request, stores, name, query, notice=f"Deleted {plural(deleted, 'image')}.")


# --- one image -------------------------------------------------------------------------------


@router.get("/projects/{name}/images/{filename}", response_class=HTMLResponse)
async def image_page(request: Request, name: str, filename: str, stores: StoresDep) -> HTMLResponse:
    """The full image, upright, with its boxes drawn, and its metadata."""
    project = await project_service.get_project(stores, name)
    found = await label_service.image_labels(stores, project.name, filename)
    context = {
        "nav": "projects",
        "project": project,
        "image": found.image,
        "boxes": found.labels,
        "suggestions": found.suggestions,
        "class_at": {c.position: c for c in project.class_details},
        "splits": SPLITS,
    }
    return render(request, "pages/image.html", context, fragment="images/_image.html")


@router.post("/projects/{name}/images/{filename}/move")
async def move_one_image(
    request: Request, name: str, filename: str, stores: StoresDep, to_split: FormText = ""
) -> Response:
    """Move this image (and its label file) to ``to_split`` and pin it there."""
    if to_split not in SPLITS:
        raise Invalid("Choose the split to move the image to: train, val or test.")
    await image_service.move_images(stores, name, [filename], to_split)
    return redirect(request, _project_url(name, f"/images/{quote(filename, safe='')}"))


# --- upload ----------------------------------------------------------------------------------


@router.post("/projects/{name}/upload")
async def upload(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """Store uploaded images and zips; the upload box gets one row per file (``upload.js``
    sends a page's worth of files per request and adds up the totals), a plain form the
    project page with every row."""
    results, split = await store_upload(request, stores, name)
    project = await project_service.get_project(stores, name)
    context = {
        **project_context(project),
        "upload_results": results,
        "upload_totals": ingest_service.totals(results),
        "upload_split": split,
    }
    return render(request, "pages/project.html", context, fragment="images/_upload_batch.html")


# --- splits ----------------------------------------------------------------------------------


@router.get("/projects/{name}/splits", response_class=HTMLResponse)
async def splits_box(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The splits box of the project page (and the head's counts, out of band): what the page
    asks for again after an upload."""
    project = await project_service.get_project(stores, name)
    return render(
        request,
        "pages/project.html",
        project_context(project, oob_counts=True),
        fragment="projects/_splits.html",
    )


async def _confirm_rebalance(request: Request, stores: StoresDep, name: str) -> HTMLResponse:
    project = await project_service.get_project(stores, name)
    return render(
        request,
        "pages/confirm_rebalance.html",
        project_context(project),
        fragment="projects/_confirm_rebalance.html",
    )


@router.get("/projects/{name}/rebalance", response_class=HTMLResponse)
async def confirm_rebalance(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """What a rebalance does, and the button that does it."""
    return await _confirm_rebalance(request, stores, name)


@router.post("/projects/{name}/rebalance")
async def rebalance(
    request: Request, name: str, stores: StoresDep, confirm: FormText = ""
) -> Response:
    """Queue a redraw of the split of every image not moved by hand, once confirmed; the
    task's page follows it (thousands of label files may move)."""
    if confirm != "yes":
        return await _confirm_rebalance(request, stores, name)
    task = await task_service.start_rebalance(stores, name)
    return redirect(request, f"/tasks/{task.id}")
