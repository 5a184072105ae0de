"""Capture from a server folder: the form that opens a folder session (on to its page), the
"End session" action of a folder session, and their JSON twins under ``/api/v1``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.config import Settings
from app.domain.capture import DRAWN
from app.domain.capture_folder import FolderSettings
from app.domain.models import SessionInfo, TaskInfo
from app.domain.stores import Stores
from app.services import capture_folder as folder_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.render import redirect
from app.web.schemas import TaskOut
from app.web.session_pages import SessionId, SessionOut, SessionStartedOut
from app.web.system_pages import DISK_FULL

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["sessions"], dependencies=[Depends(require_csrf)])

FormText = Annotated[str, Form()]


class FolderCaptureIn(BaseModel):
    """A folder session: ``folder`` an absolute path under ``YDC_IMPORT_ROOTS``;
    ``near_duplicate_bits`` (default 6, 0 keeps every image); ``split`` train/val/test or drawn;
    ``watch`` keeps looking for new files until the session is ended; ``autolabel`` labels the
    frames as they arrive with the active model."""

    folder: str = Field(max_length=4096)
    near_duplicate_bits: int | None = None
    split: str = Field(DRAWN, max_length=16)
    watch: bool = False
    autolabel: bool = False


async def _start(
    request: Request, stores: Stores, name: str, settings: FolderSettings
) -> tuple[SessionInfo, TaskInfo]:
    app_settings: Settings = request.app.state.settings
    return await folder_service.start_folder_capture(
        stores, name, settings, roots=app_settings.import_roots
    )


# --- pages ------------------------------------------------------------------------------------


@router.post("/projects/{name}/sessions/folder")
async def start_folder(
    request: Request,
    name: str,
    stores: StoresDep,
    folder: FormText = "",
    near_duplicate_bits: FormText = "",
    split: FormText = "",
    watch: FormText = "",
    autolabel: FormText = "",
) -> Response:
    """Open a folder session from the form; on to its page."""
    chosen = FolderSettings.from_form(
        folder,
        near_duplicate_bits=near_duplicate_bits,
        split=split,
        watch=watch,
        autolabel=autolabel,
    )
    session, _ = await _start(request, stores, name, chosen)
    return redirect(request, f"/sessions/{session.id}")


@router.post("/sessions/{session_id}/folder/end")
async def end_folder(request: Request, session_id: SessionId, stores: StoresDep) -> Response:
    """End a folder session (its watching task stops); on to its page."""
    await folder_service.end_folder_session(stores, session_id)
    return redirect(request, f"/sessions/{session_id}")


# --- API --------------------------------------------------------------------------------------


@api_router.post(
    "/projects/{name}/sessions/folder",
    response_model=SessionStartedOut,
    status_code=202,
    responses=DISK_FULL,
)
async def api_start_folder(
    request: Request, name: str, body: FolderCaptureIn, stores: StoresDep
) -> SessionStartedOut:
    """Start a capture session from a server folder under ``YDC_IMPORT_ROOTS`` (403 outside
    them, 404 when it is no folder; nothing is created then). Its images are taken in name
    order, recursively; follow the task, the session holds the counts and log."""
    chosen = FolderSettings.from_form(
        body.folder,
        near_duplicate_bits=""
        if body.near_duplicate_bits is None
        else str(body.near_duplicate_bits),
        split=body.split,
        watch="on" if body.watch else "",
        autolabel="on" if body.autolabel else "",
    )
    session, task = await _start(request, stores, name, chosen)
    return SessionStartedOut(session=SessionOut.of(session), task=TaskOut.of(task))


@api_router.post("/sessions/{session_id}/folder/end", response_model=SessionOut)
async def api_end_folder(session_id: SessionId, stores: StoresDep) -> SessionOut:
    """End a folder session (``completed``): a watching task stops at its next look at the
    folder; a session that has ended stays as it is (422 for a session of another source)."""
    return SessionOut.of(await folder_service.end_folder_session(stores, session_id))
