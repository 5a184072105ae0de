"""Capture sessions: the upload of a video that becomes frames (a task), a project's sessions
page, a session's page, and their JSON twins under ``/api/v1``."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from app.config import Settings
from app.domain.capture import DEFAULT_NEAR_DUPLICATE_BITS, VIDEO_EXTENSIONS, CaptureSettings
from app.domain.errors import Invalid
from app.domain.models import SPLITS, SessionInfo, TaskInfo
from app.domain.stores import Stores
from app.services import capture as capture_service
from app.web.api_uploads import large_upload_form
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.render import redirect, render
from app.web.schemas import TaskOut

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["sessions"], dependencies=[Depends(require_csrf)])

SessionId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class SessionOut(BaseModel):
    id: int
    project: str
    source: str
    settings: dict[str, Any]
    status: str
    counts: dict[str, int]
    log: list[str]
    created_at: float
    ended_at: float | None

    @classmethod
    def of(cls, info: SessionInfo) -> SessionOut:
        return cls(
            id=info.id,
            project=info.dataset,
            source=info.source,
            settings=info.settings,
            status=info.status,
            counts=info.counts,
            log=info.log,
            created_at=info.created_at,
            ended_at=info.ended_at,
        )


class SessionStartedOut(BaseModel):
    session: SessionOut
    task: TaskOut


class SessionDetailOut(SessionOut):
    task: TaskOut | None


def _video_form(request: Request) -> AbstractAsyncContextManager[FormData]:
    return large_upload_form(request, what="a video", max_files=1)


async def _start(
    request: Request, stores: Stores, name: str, form: FormData
) -> tuple[SessionInfo, TaskInfo]:
    settings: Settings = request.app.state.settings
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise Invalid("Choose a video file.")
    chosen = CaptureSettings.from_form(
        every_n=str(form.get("every_n") or ""),
        every_seconds=str(form.get("every_seconds") or ""),
        near_duplicate_bits=str(form.get("near_duplicate_bits") or ""),
        split=str(form.get("split") or ""),
    )
    video = await capture_service.stage_video(
        stores, upload.file, upload.filename, max_bytes=settings.max_import_bytes
    )
    return await capture_service.start_video_capture(
        stores, name, video=video, filename=upload.filename, settings=chosen
    )


def _form_context() -> dict[str, Any]:
    return {
        "splits": SPLITS,
        "video_accept": ",".join(VIDEO_EXTENSIONS),
        "default_bits": DEFAULT_NEAR_DUPLICATE_BITS,
    }


# --- pages ------------------------------------------------------------------------------------


@router.get("/projects/{name}/sessions", response_class=HTMLResponse)
async def sessions_page(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The project's capture sessions, newest first, and the video upload form."""
    sessions = await capture_service.list_sessions(stores, name)
    context: dict[str, Any] = {
        "nav": "projects",
        "project_name": name,
        "sessions": sessions,
        **_form_context(),
    }
    return render(request, "pages/sessions.html", context, fragment="sessions/_list.html")


@router.post("/projects/{name}/sessions/video")
async def upload_video(request: Request, name: str, stores: StoresDep) -> Response:
    """A video upload from the form; on to the new session's page."""
    async with _video_form(request) as form:
        session, _ = await _start(request, stores, name, form)
    return redirect(request, f"/sessions/{session.id}")


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
async def session_page(request: Request, session_id: SessionId, stores: StoresDep) -> HTMLResponse:
    """A session: its settings, counts, log, its task while it runs, and some of its frames."""
    view = await capture_service.session_view(stores, session_id)
    context: dict[str, Any] = {
        "nav": "projects",
        "view": view,
        "session": view.session,
        "task": view.task,
    }
    return render(request, "pages/session.html", context, fragment="sessions/_detail.html")


# --- API --------------------------------------------------------------------------------------


@api_router.post(
    "/projects/{name}/sessions/video", response_model=SessionStartedOut, status_code=202
)
async def api_upload_video(request: Request, name: str, stores: StoresDep) -> SessionStartedOut:
    """Start a capture session from a video (multipart: ``file``; ``every_n`` or
    ``every_seconds``; ``near_duplicate_bits``, 0 keeps every sampled frame; ``split``
    train/val/test or drawn). Follow the task; the session holds the counts and log."""
    async with _video_form(request) as form:
        session, task = await _start(request, stores, name, form)
    return SessionStartedOut(session=SessionOut.of(session), task=TaskOut.of(task))


@api_router.get("/projects/{name}/sessions", response_model=list[SessionOut])
async def api_sessions(name: str, stores: StoresDep) -> list[SessionOut]:
    """The project's capture sessions, newest first."""
    return [SessionOut.of(s) for s in await capture_service.list_sessions(stores, name)]


@api_router.get("/sessions/{session_id}", response_model=SessionDetailOut)
async def api_session(session_id: SessionId, stores: StoresDep) -> SessionDetailOut:
    """A capture session with its counts, log and the task that fills it."""
    view = await capture_service.session_view(stores, session_id)
    base = SessionOut.of(view.session)
    return SessionDetailOut(**base.model_dump(), task=TaskOut.of(view.task) if view.task else None)
