"""The labels JSON API under ``/api/v1/projects/{name}``: an image's labels and suggestions,
saving them under the image's version (409 when stale), adding and importing suggestions,
accepting and rejecting them, and the project-wide bulk accept above a confidence.

Every answer about one image is the same body (``ImageLabelsOut``): the image's size, version,
"no objects" mark, accepted labels and pending suggestions, with their ids.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from starlette.datastructures import UploadFile

from app.domain.errors import Invalid
from app.services import labels as label_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.schemas import (
    MAX_LABEL_ID,
    Confidence,
    ImageLabelsOut,
    LabelsUpdate,
    SuggestionsAccept,
    SuggestionsAcceptedOut,
    SuggestionsCreate,
    SuggestionSummaryOut,
)

router = APIRouter(prefix="/api/v1", tags=["labels"], dependencies=[Depends(require_csrf)])

IMAGE = "/projects/{name}/images/{filename}"
MAX_IMPORT_BYTES = 2 * 2**20  # a YOLO label file of ~50,000 lines
SuggestionId = Annotated[int, Path(ge=1, le=MAX_LABEL_ID, description="The suggestion's id.")]
IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A YOLO label file, lines ``class x y width height [confidence]``: the "
        "raw text, or a form upload in the field ``file``.",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.get(f"{IMAGE}/labels", response_model=ImageLabelsOut)
async def get_labels(name: str, filename: str, stores: StoresDep) -> ImageLabelsOut:
    """The image's accepted labels and pending suggestions, and the version to save against."""
    return ImageLabelsOut.of(await label_service.image_labels(stores, name, filename))


@router.put(f"{IMAGE}/labels", response_model=ImageLabelsOut, responses=error_responses(409))
async def put_labels(
    name: str, filename: str, body: LabelsUpdate, stores: StoresDep
) -> ImageLabelsOut:
    """Save the image's whole label set if ``version`` is still the image's (else 409: reload).

    A label with the id of a label keeps it (source, model, confidence); with the id of a
    pending suggestion it accepts it; without an id it is a new manual label. Suggestions in
    ``reject`` are rejected, the others stay pending. ``no_objects`` (with no labels) marks a
    negative example and rejects the pending suggestions. A bad box, class, id or a missing
    version is a 422 and nothing changes.
    """
    saved = await label_service.save_labels(
        stores,
        name,
        filename,
        [label.annotation() for label in body.labels],
        version=body.version,
        no_objects=body.no_objects,
        reject=body.reject,
    )
    return ImageLabelsOut.of(saved)


@router.get(f"{IMAGE}/suggestions", response_model=ImageLabelsOut)
async def get_suggestions(name: str, filename: str, stores: StoresDep) -> ImageLabelsOut:
    """The image's pending suggestions (``suggestions``), with its labels and version."""
    return ImageLabelsOut.of(await label_service.image_labels(stores, name, filename))


@router.post(f"{IMAGE}/suggestions", response_model=ImageLabelsOut, status_code=201)
async def post_suggestions(
    name: str, filename: str, body: SuggestionsCreate, stores: StoresDep
) -> ImageLabelsOut:
    """Add pending suggestions (source ``model`` when a model of the project is named, else
    ``import``). The image's version stays, so an annotator's save still succeeds."""
    added = await label_service.add_suggestions(
        stores, name, filename, [s.annotation() for s in body.suggestions]
    )
    return ImageLabelsOut.of(added)


@router.post(
    f"{IMAGE}/suggestions/import",
    response_model=ImageLabelsOut,
    status_code=201,
    openapi_extra=IMPORT_BODY,
    responses=error_responses(413),
)
async def import_suggestions(
    name: str, filename: str, request: Request, stores: StoresDep
) -> ImageLabelsOut:
    """Add the lines of a YOLO label file as pending suggestions (source ``import``; a sixth
    column is the confidence). Every bad line is named in the 422, and nothing is added."""
    text = await _label_text(request)
    return ImageLabelsOut.of(await label_service.import_suggestions(stores, name, filename, text))


@router.post(f"{IMAGE}/suggestions/accept-all", response_model=ImageLabelsOut)
async def accept_all(name: str, filename: str, stores: StoresDep) -> ImageLabelsOut:
    """Accept every pending suggestion of the image (source, model, confidence kept)."""
    return ImageLabelsOut.of(await label_service.accept_suggestions(stores, name, filename))


@router.post(f"{IMAGE}/suggestions/reject-all", response_model=ImageLabelsOut)
async def reject_all(name: str, filename: str, stores: StoresDep) -> ImageLabelsOut:
    """Reject every pending suggestion of the image (kept as rejected, never exported)."""
    return ImageLabelsOut.of(await label_service.reject_suggestions(stores, name, filename))


@router.post(f"{IMAGE}/suggestions/{{suggestion_id}}/accept", response_model=ImageLabelsOut)
async def accept_one(
    name: str, filename: str, suggestion_id: SuggestionId, stores: StoresDep
) -> ImageLabelsOut:
    """Accept one pending suggestion: it becomes a label, source, model and confidence kept."""
    accepted = await label_service.accept_suggestions(stores, name, filename, [suggestion_id])
    return ImageLabelsOut.of(accepted)


@router.post(f"{IMAGE}/suggestions/{{suggestion_id}}/reject", response_model=ImageLabelsOut)
async def reject_one(
    name: str, filename: str, suggestion_id: SuggestionId, stores: StoresDep
) -> ImageLabelsOut:
    """Reject one pending suggestion (kept as rejected, never exported)."""
    rejected = await label_service.reject_suggestions(stores, name, filename, [suggestion_id])
    return ImageLabelsOut.of(rejected)


@router.get("/projects/{name}/suggestions/summary", response_model=SuggestionSummaryOut)
async def suggestion_summary(
    name: str,
    stores: StoresDep,
    min_confidence: Annotated[
        Confidence,
        Query(description="Count those at or above it (at 0, also those of unknown confidence)."),
    ] = 0.0,
) -> SuggestionSummaryOut:
    """How many pending suggestions of the project a bulk accept at this threshold takes."""
    found = await label_service.suggestion_summary(stores, name, min_confidence)
    return SuggestionSummaryOut(suggestions=found.suggestions, images=found.images)


@router.post("/projects/{name}/suggestions/accept", response_model=SuggestionsAcceptedOut)
async def accept_above(
    name: str, body: SuggestionsAccept, stores: StoresDep
) -> SuggestionsAcceptedOut:
    """Accept every pending suggestion of the project at ``min_confidence`` or above, in one
    transaction; each image touched gets a new version and label file."""
    done = await label_service.accept_suggestions_above(stores, name, body.min_confidence)
    return SuggestionsAcceptedOut(accepted=done.suggestions, images=done.images)


async def _label_text(request: Request) -> str:
    """The label file's text: the raw body, or the form's ``file``."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        upload = (await request.form()).get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("Send the label file in the form field 'file'.")
        data = await upload.read(MAX_IMPORT_BYTES + 1)
    else:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) > MAX_IMPORT_BYTES:
                break
        data = bytes(buffer)
    if len(data) > MAX_IMPORT_BYTES:
        raise HTTPException(
            413, f"The label file is larger than {MAX_IMPORT_BYTES // 2**20} MB: split it up."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("The label file is not UTF-8 text.") from None
