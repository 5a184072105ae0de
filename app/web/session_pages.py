"""Capture sessions: the upload of a video that becomes frames (a task), a webcam session and
its capture page (the browser posts frames to ``/api/v1/sessions/{id}/frames``), a project's
sessions page (with the folder and stream forms, whose routes live in ``capture_folder_pages``
and ``feed_pages``), a session's page, and their JSON twins under ``/api/v1``."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from app.config import Settings
from app.domain.capture import (
    DEFAULT_NEAR_DUPLICATE_BITS,
    DEFAULT_WEBCAM_SECONDS,
    VIDEO_EXTENSIONS,
    CaptureSettings,
    WebcamSettings,
    frame_mode,
)
from app.domain.errors import Invalid
from app.domain.feeds import DEFAULT_LIVE_IMGSZ, DEFAULT_LIVE_RATE, redact_url
from app.domain.models import SPLITS, SessionInfo, SessionSource, TaskInfo
from app.domain.stores import Stores
from app.services import capture as capture_service
from app.services import webcam as webcam_service
from app.services.feeds import shown_source
from app.web.api_uploads import large_upload_form, limited_form
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.render import redirect, render
from app.web.schemas import TaskOut
from app.web.system_pages import DISK_FULL

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["sessions"], dependencies=[Depends(require_csrf)])

SessionId = Annotated[int, Path(ge=1, le=2**63 - 1)]
FormText = Annotated[str, Form()]
STRIP_FRAMES = 12  # thumbnails in the webcam page's strip of the last frames


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
        settings = dict(info.settings)
        if info.source == SessionSource.STREAM and isinstance(settings.get("source"), str):
            settings["source"] = redact_url(settings["source"])  # a camera's password stays out
        return cls(
            id=info.id,
            project=info.dataset,
            source=info.source,
            settings=settings,
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


class FrameOut(BaseModel):
    """What became of a posted webcam frame, with the session's counts after it."""

    outcome: str  # kept | skipped_near_duplicate | skipped_duplicate
    mode: str
    message: str
    filename: str | None  # the stored image, when kept
    split: str | None
    thumbnail: str | None  # its thumbnail's URL
    distance: int | None  # bits from the last kept frame, when skipped as a near-duplicate
    autolabel_task: int | None  # the auto-label task this frame queued (setting autolabel)
    session: SessionOut

    @classmethod
    def of(cls, done: webcam_service.FrameOutcome) -> FrameOut:
        image = done.image
        return cls(
            outcome=done.outcome,
            mode=done.mode,
            message=done.message,
            filename=image.filename if image else None,
            split=image.split if image else None,
            thumbnail=f"/media/{quote(image.dataset)}/thumbs/{image.sha256}.jpg" if image else None,
            distance=done.distance,
            autolabel_task=done.autolabel_task.id if done.autolabel_task else None,
            session=SessionOut.of(done.session),
        )


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
    autolabel = str(form.get("autolabel") or "").strip().lower() in ("on", "true", "1", "yes")
    return await capture_service.start_video_capture(
        stores, name, video=video, filename=upload.filename, settings=chosen, autolabel=autolabel
    )


def _form_context(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {
        "splits": SPLITS,
        "video_accept": ",".join(VIDEO_EXTENSIONS),
        "default_bits": DEFAULT_NEAR_DUPLICATE_BITS,
        "feed_schemes": settings.feed_schemes,
        "default_live_rate": DEFAULT_LIVE_RATE,
        "default_live_imgsz": DEFAULT_LIVE_IMGSZ,
    }


async def _start_webcam(
    stores: Stores, name: str, near_duplicate_bits: str, split: str, autolabel: str
) -> SessionInfo:
    chosen = WebcamSettings.from_form(
        near_duplicate_bits=near_duplicate_bits, split=split, autolabel=autolabel
    )
    return await webcam_service.start_webcam_capture(stores, name, chosen)


async def _post_frame(
    request: Request, stores: Stores, session_id: int
) -> webcam_service.FrameOutcome:
    """The frame of a multipart post (``file``, ``mode``), refused (413) before its body is
    read when its declared length is over what one image may be."""
    settings: Settings = request.app.state.settings
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "Send the frame as multipart/form-data: 'file' and 'mode'.")
    async with limited_form(
        request,
        what="a frame",
        limit=settings.max_upload_bytes,
        setting="YDC_MAX_UPLOAD_BYTES",
        max_files=1,
        max_fields=5,
    ) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("Send the frame as a file in the 'file' field.")
        mode = frame_mode(str(form.get("mode") or "manual"))
        return await webcam_service.add_webcam_frame(stores, session_id, upload.file, mode=mode)


# --- pages ------------------------------------------------------------------------------------


@router.get("/projects/{name}/sessions", response_class=HTMLResponse)
async def sessions_page(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The project's capture sessions, newest first, and the video upload form."""
    sessions = await capture_service.list_sessions(stores, name)
    context: dict[str, Any] = {
        "nav": "projects",
        "project_name": name,
        "sessions": sessions,
        **_form_context(request),
    }
    return render(request, "pages/sessions.html", context, fragment="sessions/_list.html")


@router.post("/projects/{name}/sessions/video")
async def upload_video(request: Request, name: str, stores: StoresDep) -> Response:
    """A video upload from the form; on to the new session's page."""
    async with _video_form(request) as form:
        session, _ = await _start(request, stores, name, form)
    return redirect(request, f"/sessions/{session.id}")


@router.post("/projects/{name}/sessions/webcam")
async def start_webcam(
    request: Request,
    name: str,
    stores: StoresDep,
    near_duplicate_bits: FormText = "",
    split: FormText = "",
    autolabel: FormText = "",
) -> Response:
    """Open a webcam session from the form; on to its capture page."""
    session = await _start_webcam(stores, name, near_duplicate_bits, split, autolabel)
    return redirect(request, f"/sessions/{session.id}/webcam")


@router.get("/sessions/{session_id}/webcam", response_class=HTMLResponse)
async def webcam_page(request: Request, session_id: SessionId, stores: StoresDep) -> HTMLResponse:
    """The webcam capture page of a webcam session: preview, Capture, interval, counters."""
    session = await webcam_service.webcam_session(stores, session_id)
    recent = await webcam_service.recent_frames(stores, session, STRIP_FRAMES)
    context: dict[str, Any] = {
        "nav": "projects",
        "session": session,
        "recent": recent,
        "strip_frames": STRIP_FRAMES,
        "default_seconds": DEFAULT_WEBCAM_SECONDS,
    }
    return render(request, "pages/webcam.html", context, fragment="sessions/_webcam.html")


@router.post("/sessions/{session_id}/webcam/end")
async def end_session(request: Request, session_id: SessionId, stores: StoresDep) -> Response:
    """End a webcam session (``completed``); on to its page."""
    await webcam_service.end_webcam_session(stores, session_id)
    return redirect(request, f"/sessions/{session_id}")


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
async def session_page(request: Request, session_id: SessionId, stores: StoresDep) -> HTMLResponse:
    """A session: its settings, counts, log, its task while it runs, and some of its frames."""
    view = await capture_service.session_view(stores, session_id)
    context: dict[str, Any] = {
        "nav": "projects",
        "view": view,
        "session": view.session,
        "task": view.task,
        "feed_source": shown_source(view.session),
    }
    return render(request, "pages/session.html", context, fragment="sessions/_detail.html")


# --- API --------------------------------------------------------------------------------------


@api_router.post(
    "/projects/{name}/sessions/video",
    response_model=SessionStartedOut,
    status_code=202,
    responses={**error_responses(413), **DISK_FULL},
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


@api_router.post("/projects/{name}/sessions/webcam", response_model=SessionOut, status_code=201)
async def api_start_webcam(
    name: str,
    stores: StoresDep,
    near_duplicate_bits: FormText = "",
    split: FormText = "",
    autolabel: FormText = "",
) -> SessionOut:
    """Open a webcam session (form: ``near_duplicate_bits`` for interval captures, 0 keeps
    every frame; ``split`` train/val/test or drawn; ``autolabel`` true to auto-label frames
    as they arrive with the active model). Post its frames to ``/api/v1/sessions/{id}/frames``."""
    return SessionOut.of(await _start_webcam(stores, name, near_duplicate_bits, split, autolabel))


@api_router.post(
    "/sessions/{session_id}/frames",
    response_model=FrameOut,
    responses={**error_responses(409, 413), **DISK_FULL},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            # Blank or left out: manual.
                            "mode": {"type": "string", "enum": ["manual", "interval", ""]},
                        },
                    }
                }
            },
        }
    },
)
async def api_post_frame(request: Request, session_id: SessionId, stores: StoresDep) -> FrameOut:
    """Store a webcam frame (multipart: ``file``, an image; ``mode`` manual or interval) into
    the session in progress (409 once it has ended). A manual capture is always kept; an
    interval capture within the session's threshold of the last kept frame is counted as a
    near-duplicate and not stored; the same bytes already in the project are not stored twice.
    A file that is no image or too large is refused (4xx) with nothing stored."""
    return FrameOut.of(await _post_frame(request, stores, session_id))


@api_router.post("/sessions/{session_id}/webcam/end", response_model=SessionOut)
async def api_end_session(session_id: SessionId, stores: StoresDep) -> SessionOut:
    """End a webcam session (``completed``); a session that has ended stays as it is."""
    return SessionOut.of(await webcam_service.end_webcam_session(stores, session_id))
