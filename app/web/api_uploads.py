"""Image upload over the JSON API: ``POST /api/v1/projects/{name}/images`` (multipart).

Starlette spools each uploaded file to a temporary file once it passes 1 MiB, and the store
copies it from there in chunks: no upload is ever held whole in memory. A request whose declared
length is over what one upload may carry is refused before its body is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.datastructures import FormData, UploadFile

from app.config import Settings
from app.domain.models import IngestResult
from app.domain.stores import Stores
from app.services import ingest as ingest_service
from app.services import system as system_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.formatting import file_size
from app.web.schemas import IngestResultOut, UploadOut, UploadTotals
from app.web.system_pages import DISK_FULL

router = APIRouter(prefix="/api/v1", tags=["images"], dependencies=[Depends(require_csrf)])

MAX_FILES_PER_REQUEST = 1000
MAX_FIELDS_PER_REQUEST = 20  # split, csrf_token: anything else is ignored
FORM_OVERHEAD_BYTES = 2**20  # part headers and boundaries, on top of the files themselves


def files_body(description: str, **fields: dict[str, object]) -> dict[str, object]:
    """OpenAPI for a multipart body of ``files`` fields (and any other ``fields``), which
    these routes read themselves (``uploaded_files``) rather than through parameters."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": description,
                            },
                            **fields,
                        },
                    }
                }
            },
        }
    }


UPLOAD_BODY = files_body(
    "Images (JPEG, PNG, BMP, WebP, TIFF) and zips of images; one or many ``files`` fields.",
    split={
        "type": "string",
        "enum": ["train", "val", "test", ""],
        "description": "Put every image here; left out or blank, each image goes to the split "
        "its hash draws (near-duplicates join their twin's).",
    },
)


def request_byte_limit(settings: Settings) -> int:
    """The most one upload request may carry: a zip at its limit, plus the form's overhead."""
    return ingest_service.zip_byte_limit(settings.max_upload_bytes) + FORM_OVERHEAD_BYTES


@asynccontextmanager
async def limited_form(
    request: Request,
    *,
    what: str,
    limit: int,
    setting: str,
    advice: str = "",
    max_files: int = 2,
    max_fields: int = 20,
) -> AsyncIterator[FormData]:
    """The multipart form of one upload, refused (413) before its body is read when its
    declared length is over ``limit`` bytes (the ``setting`` that sets it is named in the
    message, with ``what`` the file is and ``advice`` after it)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + FORM_OVERHEAD_BYTES:
        raise HTTPException(
            413,
            f"The upload is {file_size(int(length))}; {what} may be at most "
            f"{file_size(limit)} ({setting}).{advice}",
        )
    form = await request.form(max_files=max_files, max_fields=max_fields)
    try:
        yield form
    finally:
        await form.close()


def large_upload_form(
    request: Request, *, what: str, advice: str = "", max_files: int = 2, max_fields: int = 20
) -> AbstractAsyncContextManager[FormData]:
    """The form of one large upload (a dataset zip, a video, weights): limited by
    ``YDC_MAX_IMPORT_BYTES``."""
    settings: Settings = request.app.state.settings
    return limited_form(
        request,
        what=what,
        limit=settings.max_import_bytes,
        setting="YDC_MAX_IMPORT_BYTES",
        advice=advice,
        max_files=max_files,
        max_fields=max_fields,
    )


@asynccontextmanager
async def uploaded_files(
    request: Request, *, purpose: str = "upload"
) -> AsyncIterator[tuple[list[UploadFile], FormData]]:
    """The files of a multipart request (``files`` fields) and its form, read with the upload
    limits; closed on leaving. Refused before anything is done with them: a declared length
    over the limit (413, before the body is read), a body that is not multipart, a text
    ``files`` field, no file (``purpose`` names what the files were for)."""
    settings: Settings = request.app.state.settings
    limit = request_byte_limit(settings)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(
            413,
            f"The upload is {int(length) / 2**20:.0f} MB; one request may carry at most "
            f"{limit / 2**20:.0f} MB. Send the files in several requests.",
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "Send the files as multipart/form-data in 'files' fields.")
    form = await request.form(max_files=MAX_FILES_PER_REQUEST, max_fields=MAX_FIELDS_PER_REQUEST)
    try:
        # A form sent with no file chosen carries one empty part: nothing, not an error.
        fields = [f for f in form.getlist("files") if f != ""]
        if not all(isinstance(u, UploadFile) for u in fields):
            raise HTTPException(422, "Every 'files' field must be a file, not text.")
        uploads = [u for u in fields if isinstance(u, UploadFile) and u.filename]
        if not uploads:
            raise HTTPException(422, f"Choose the files to {purpose} first: the request has none.")
        yield uploads, form
    finally:
        await form.close()


async def store_upload(
    request: Request, stores: Stores, name: str
) -> tuple[list[IngestResult], str | None]:
    """Store the files of a multipart upload (``files`` fields, an optional ``split``): the
    API's and the upload box's. Returns every file's result and the split asked for.

    Refused whole, before anything is stored: what ``uploaded_files`` refuses, an unknown
    project or split.
    """
    settings: Settings = request.app.state.settings
    async with uploaded_files(request) as (uploads, form):
        split = form.get("split")
        if not isinstance(split, str | None):
            raise HTTPException(422, "The 'split' field must be text.")
        split = split.strip() if split and split.strip() else None
        await system_service.ensure_disk_room(
            stores, incoming=sum(system_service.size_of(u.file) for u in uploads)
        )
        results = await ingest_service.ingest_files(
            stores,
            name,
            [(u.filename or "upload", u.file) for u in uploads],
            split,
            max_zip_bytes=ingest_service.zip_byte_limit(settings.max_upload_bytes),
        )
    return results, split


@router.post(
    "/projects/{name}/images",
    response_model=UploadOut,
    openapi_extra=UPLOAD_BODY,
    responses={**error_responses(413), **DISK_FULL},
)
async def upload_images(name: str, request: Request, stores: StoresDep) -> UploadOut:
    """Store the uploaded images (and the images in uploaded zips); answers what became of
    each one: stored, duplicate (already in the project: not stored twice) or refused with the
    reason. One bad file never fails the others."""
    results, _ = await store_upload(request, stores, name)
    counted = ingest_service.totals(results)
    return UploadOut(
        results=[IngestResultOut.of(r) for r in results], totals=UploadTotals(**counted)
    )
