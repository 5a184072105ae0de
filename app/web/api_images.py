"""The image grid's JSON API under ``/api/v1/projects/{name}``: a filtered, keyset-paginated
listing with its count, one image, bulk move and delete, and starting a rebalance of the splits
(a task).

An empty query parameter (``?split=&q=``, as a form with "any" chosen sends it) means "no filter".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from app.domain.models import ImageFilter, ImageState
from app.services import images as image_service
from app.services import tasks as task_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.schemas import (
    ImageOut,
    ImagePageOut,
    ImagesDelete,
    ImagesDeletedOut,
    ImagesMove,
    ImagesMovedOut,
    SplitName,
    TaskOut,
)

router = APIRouter(prefix="/api/v1", tags=["images"], dependencies=[Depends(require_csrf)])


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() == "" else value


class _BlankIsNone:
    """A blank value (a filter form's empty field) means no filter, and the OpenAPI document
    says so: the parameter's schema, or a blank string."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_blank_is_none, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(schema), {"type": "string", "pattern": r"^\s*$"}]}


Blank = _BlankIsNone()
# Bounded so an absurd id is a 422, not a database overflow. The bounds sit on the int, not on
# the optional parameter, so a blank value that became None is not compared with them.
MAX_ID = 2**63 - 1
ClassId = Annotated[int, Field(ge=1, le=MAX_ID)]
SessionId = Annotated[int, Field(ge=1, le=MAX_ID)]
Cursor = Annotated[int, Field(ge=0, le=MAX_ID)]
NamePart = Annotated[str, Field(max_length=200)]


@router.get("/projects/{name}/images", response_model=ImagePageOut)
async def list_images(
    name: str,
    stores: StoresDep,
    split: Annotated[SplitName | None, Blank, Query(description="Only this split.")] = None,
    state: Annotated[
        ImageState | None,
        Blank,
        Query(description="labelled, unlabelled, no_objects, suggestions or missing."),
    ] = None,
    class_id: Annotated[
        ClassId | None,
        Blank,
        Query(description="Only images with an accepted box of this class (its stable id)."),
    ] = None,
    q: Annotated[
        NamePart | None, Blank, Query(description="Part of the file name, any case.")
    ] = None,
    session: Annotated[
        SessionId | None, Blank, Query(description="Only the frames of this capture session.")
    ] = None,
    cursor: Annotated[
        Cursor | None, Blank, Query(description="``next_cursor`` of the last page.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=image_service.MAX_PAGE, description="Images per page.")
    ] = image_service.DEFAULT_PAGE,
) -> ImagePageOut:
    """Images in upload order that match every filter given, a page at a time, with the count
    of all matches."""
    filters = ImageFilter(split=split, state=state, class_id=class_id, name=q, session_id=session)
    page = await image_service.list_images(stores, name, filters, cursor, limit)
    return ImagePageOut(
        items=[ImageOut.of(i) for i in page.items], next_cursor=page.next_cursor, count=page.count
    )


@router.post("/projects/{name}/images/move", response_model=ImagesMovedOut)
async def move_images(name: str, body: ImagesMove, stores: StoresDep) -> ImagesMovedOut:
    """Move images (and their label files) to a split and pin them there: all of them, or none
    when a name is unknown (404)."""
    moved = await image_service.move_images(stores, name, body.filenames, body.split)
    return ImagesMovedOut(moved=moved)


@router.post("/projects/{name}/images/delete", response_model=ImagesDeletedOut)
async def delete_images(name: str, body: ImagesDelete, stores: StoresDep) -> ImagesDeletedOut:
    """Delete images with their labels and files: all of them, or none when a name is unknown
    (404)."""
    deleted = await image_service.delete_images(stores, name, body.filenames)
    return ImagesDeletedOut(deleted=deleted)


@router.post("/projects/{name}/rebalance", response_model=TaskOut, status_code=202)
async def rebalance(name: str, stores: StoresDep) -> TaskOut:
    """Start redrawing the split of every image not moved by hand from the project's ratios:
    a task (``GET /api/v1/tasks/{id}`` follows it; its result's ``num_images`` holds the images
    per split afterwards)."""
    return TaskOut.of(await task_service.start_rebalance(stores, name))


@router.get("/projects/{name}/images/{filename}", response_model=ImageOut)
async def get_image(name: str, filename: str, stores: StoresDep) -> ImageOut:
    return ImageOut.of(await image_service.get_image(stores, name, filename))


@router.get("/projects/{name}/images/{filename}/thumbnail", response_class=FileResponse)
async def get_thumbnail(name: str, filename: str, stores: StoresDep) -> FileResponse:
    """The thumbnail, made again if it is missing (``thumb_url`` serves it statically once it
    exists)."""
    path = await image_service.thumbnail(stores, name, filename)
    return FileResponse(path, media_type="image/jpeg")
