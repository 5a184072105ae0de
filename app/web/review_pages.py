"""The review page: a project's pending suggestions (how many, on how many images, per class), a
link that walks them image by image in the annotator, and the bulk accept above a confidence
threshold, which shows what it would accept before it does.

Works without JavaScript (the threshold form posts, the confirmation and the result are pages);
with htmx every step swaps the ``#review`` block in place (``review/_queue.html``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from app.domain.errors import Invalid
from app.domain.labels import SuggestionCount
from app.services import labels as label_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.render import render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

FormText = Annotated[str, Form()]


def _project_url(name: str, tail: str = "") -> str:
    return f"/projects/{quote(name, safe='')}{tail}"


def parse_threshold(text: str) -> float:
    """The threshold as typed: a fraction (``0.5``) or a percentage (``50%``); ``Invalid``
    with a message for the form otherwise."""
    cleaned = text.strip()
    if not cleaned:
        raise Invalid("Give a confidence between 0 and 1, for example 0.5.")
    percent = cleaned.endswith("%")
    try:
        value = float(cleaned.rstrip("%").strip())
    except ValueError:
        raise Invalid(f"“{cleaned}” is not a number: give a confidence such as 0.5.") from None
    if percent:
        value /= 100
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise Invalid(f"“{cleaned}” is not between 0 and 1 (or 0% and 100%).")
    return value


def _threshold_text(value: float) -> str:
    return f"{value:g}"


async def _review(
    request: Request,
    stores: StoresDep,
    name: str,
    *,
    threshold: str = _threshold_text(label_service.DEFAULT_MIN_CONFIDENCE),
    min_confidence: float | None = None,
    confirm: SuggestionCount | None = None,
    result: SuggestionCount | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    queue = await label_service.review_queue(stores, name)
    project = queue.project
    first = queue.first_filename
    context: dict[str, Any] = {
        "nav": "projects",
        "project": project,
        "queue": queue,
        "project_url": _project_url(project.name),
        "review_url": _project_url(project.name, "/review"),
        "grid_url": _project_url(project.name, "/images?state=suggestions"),
        "annotate_url": (
            _project_url(project.name, f"/annotate/{quote(first, safe='')}?state=suggestions")
            if first
            else None
        ),
        "threshold": threshold,
        "min_confidence": min_confidence,
        "confirm": confirm,
        "result": result,
        "error": error,
    }
    return render(
        request,
        "pages/review.html",
        context,
        fragment="review/_queue.html",
        status_code=status_code,
    )


@router.get("/projects/{name}/review", response_class=HTMLResponse)
async def review_page(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The project's pending suggestions and the bulk accept form."""
    return await _review(request, stores, name)


@router.post("/projects/{name}/review/accept", response_class=HTMLResponse)
async def bulk_accept(
    request: Request,
    name: str,
    stores: StoresDep,
    min_confidence: FormText = "",
    confirm: FormText = "",
) -> HTMLResponse:
    """Without ``confirm=yes``: how many suggestions (on how many images) the threshold takes.
    With it: accept them and show what was accepted."""
    try:
        threshold = parse_threshold(min_confidence)
    except Invalid as error:
        return await _review(
            request, stores, name, threshold=min_confidence, error=error.message, status_code=422
        )
    text = _threshold_text(threshold)
    if confirm != "yes":
        counts = await label_service.suggestion_summary(stores, name, threshold)
        return await _review(
            request, stores, name, threshold=text, min_confidence=threshold, confirm=counts
        )
    done = await label_service.accept_suggestions_above(stores, name, threshold)
    return await _review(
        request, stores, name, threshold=text, min_confidence=threshold, result=done
    )
