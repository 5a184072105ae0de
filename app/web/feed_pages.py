"""Stream feeds: the form that opens a stream session (on to its feed page), the feed page (the
newest frame, with the model's boxes when the live view is on; the feed's state and reconnects;
Capture, a button and a key; the counters and last frames; End session), the frames it shows,
and the JSON twins under ``/api/v1``. The server only reads what the feed's worker publishes
(``app.services.feeds``): it never opens the stream or loads the model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from app.config import Settings
from app.domain.capture import DRAWN
from app.domain.feeds import FeedSettings
from app.domain.models import SessionInfo, TaskInfo
from app.domain.stores import Stores
from app.services import feeds as feed_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.render import is_htmx, redirect, render
from app.web.schemas import TaskOut
from app.web.session_pages import SessionId, SessionOut, SessionStartedOut
from app.web.system_pages import DISK_FULL

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["sessions"], dependencies=[Depends(require_csrf)])

FormText = Annotated[str, Form()]
STRIP_FRAMES = 12


class FeedIn(BaseModel):
    """A stream session: ``source`` a URL whose scheme the admin allows (``YDC_FEED_SCHEMES``:
    by default rtsp, rtsps, http, https) or a camera index of the server (when ``device`` is
    allowed); ``every_seconds`` an automatic capture every T seconds (null: manual captures
    only); ``near_duplicate_bits`` (default 6, 0 keeps every interval capture); ``split``
    train/val/test or drawn; ``live`` the active model's boxes drawn on the frames, at most
    ``live_rate`` inferences a second at ``imgsz`` (captured frames keep them as pending
    suggestions)."""

    source: str = Field(max_length=4096)
    every_seconds: float | None = None
    near_duplicate_bits: int | None = None
    split: str = Field(DRAWN, max_length=16)
    live: bool = False
    live_rate: float | None = None
    imgsz: int | None = None


class FeedBoxOut(BaseModel):
    class_id: int  # the project's class index; -1 for a class of the model the project lacks
    name: str
    confidence: float
    x: float
    y: float
    w: float
    h: float


class FeedLiveOut(BaseModel):
    on: bool
    state: str
    model: str | None
    imgsz: int | None
    rate: float | None
    fps: float | None
    inferences: int
    inference_ms: float | None
    frame_at: float | None
    boxes: list[FeedBoxOut]


class FeedStatusOut(BaseModel):
    """What the feed's worker last published, and the state the page shows (``waiting`` before
    the task started, ``stalled`` when its worker went silent, ``ended``)."""

    session: SessionOut
    state: str
    message: str
    source: str
    fps: float | None
    width: int | None
    height: int | None
    frame_at: float | None
    reconnects: int
    attempt: int
    retry_in_s: float | None
    live: FeedLiveOut | None
    last_capture: dict[str, Any] | None
    task: TaskOut | None
    updated_at: float | None

    @classmethod
    def of(cls, view: feed_service.FeedView) -> FeedStatusOut:
        status = view.status or {}
        live = status.get("live")
        return cls(
            session=SessionOut.of(view.session),
            state=view.state,
            message=_message(view),
            source=view.source,
            fps=status.get("fps"),
            width=status.get("width"),
            height=status.get("height"),
            frame_at=status.get("frame_at"),
            reconnects=int(status.get("reconnects") or 0),
            attempt=int(status.get("attempt") or 0),
            retry_in_s=status.get("retry_in_s"),
            live=FeedLiveOut(**live) if isinstance(live, dict) else None,
            last_capture=status.get("last_capture"),
            task=TaskOut.of(view.task) if view.task else None,
            updated_at=status.get("updated_at"),
        )


class FeedCaptureOut(BaseModel):
    """What became of a capture asked of a feed: ``outcome`` kept, skipped_duplicate,
    no_frame (the stream was not connected), or pending (asked; the feed takes it shortly)."""

    id: str
    outcome: str
    message: str
    filename: str | None = None
    split: str | None = None
    suggestions: int = 0


def _message(view: feed_service.FeedView) -> str:
    if view.state == "waiting":
        task = f" (task #{view.task.id} is {view.task.status})" if view.task else ""
        return f"Waiting for a worker to start the feed{task}."
    if view.state == "stalled":
        return "The feed's worker has not reported for a while: it may have stopped."
    if view.state == "ended" and (view.status or {}).get("state") != "ended":
        return "The session has ended: the feed closes the stream."
    return str((view.status or {}).get("message") or "")


def _schemes(request: Request) -> list[str]:
    settings: Settings = request.app.state.settings
    return list(settings.feed_schemes)


async def _start(
    request: Request, stores: Stores, name: str, chosen: FeedSettings
) -> tuple[SessionInfo, TaskInfo]:
    return await feed_service.start_feed_capture(stores, name, chosen, schemes=_schemes(request))


async def _page(request: Request, stores: Stores, session_id: int) -> HTMLResponse:
    view = await feed_service.feed_view(stores, session_id, recent=STRIP_FRAMES)
    context: dict[str, Any] = {
        "nav": "projects",
        "view": view,
        "session": view.session,
        "status": view.status or {},
        "message": _message(view),
        "strip_frames": STRIP_FRAMES,
    }
    return render(request, "pages/feed.html", context, fragment="feeds/_status.html")


# --- pages ------------------------------------------------------------------------------------


@router.post("/projects/{name}/sessions/stream")
async def start_stream(
    request: Request,
    name: str,
    stores: StoresDep,
    source: FormText = "",
    every_seconds: FormText = "",
    near_duplicate_bits: FormText = "",
    split: FormText = "",
    live: FormText = "",
    live_rate: FormText = "",
    imgsz: FormText = "",
) -> Response:
    """Open a stream session from the form; on to its feed page."""
    chosen = FeedSettings.from_form(
        source,
        every_seconds=every_seconds,
        near_duplicate_bits=near_duplicate_bits,
        split=split,
        live=live,
        live_rate=live_rate,
        imgsz=imgsz,
    )
    session, _ = await _start(request, stores, name, chosen)
    return redirect(request, f"/sessions/{session.id}/feed")


@router.get("/sessions/{session_id}/feed", response_class=HTMLResponse)
async def feed_page(request: Request, session_id: SessionId, stores: StoresDep) -> HTMLResponse:
    """The feed page of a stream session (its status panel alone for htmx)."""
    return await _page(request, stores, session_id)


@router.get("/sessions/{session_id}/feed/frame.jpg")
async def feed_frame(
    session_id: SessionId,
    stores: StoresDep,
    view: Annotated[Literal["camera", "live"], Query()] = "camera",
) -> Response:
    """The newest frame of the feed (``live``: the one the model saw, with its boxes)."""
    data = await feed_service.frame_bytes(stores, session_id, view)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/sessions/{session_id}/feed/capture")
async def capture_now(request: Request, session_id: SessionId, stores: StoresDep) -> Response:
    """Capture the frame on screen (the form's button without JS); back to the feed page, or
    its status panel for htmx."""
    await feed_service.request_capture(stores, session_id)
    if is_htmx(request):
        return await _page(request, stores, session_id)
    return redirect(request, f"/sessions/{session_id}/feed")


@router.post("/sessions/{session_id}/feed/end")
async def end_feed(request: Request, session_id: SessionId, stores: StoresDep) -> Response:
    """End a stream session: its worker closes the stream; on to the feed page."""
    await feed_service.end_feed_session(stores, session_id)
    return redirect(request, f"/sessions/{session_id}/feed")


# --- API --------------------------------------------------------------------------------------


@api_router.post(
    "/projects/{name}/sessions/stream",
    response_model=SessionStartedOut,
    status_code=202,
    responses=DISK_FULL,
)
async def api_start_stream(
    request: Request, name: str, body: FeedIn, stores: StoresDep
) -> SessionStartedOut:
    """Start a capture session from a stream (403 for a scheme or camera the admin does not
    allow, ``file:`` included; 422 for no URL, or the live view without an active model;
    nothing is created then). A task in a worker reads it until the session is ended; follow
    ``/api/v1/sessions/{id}/feed``."""
    chosen = FeedSettings.from_form(
        body.source,
        every_seconds="" if body.every_seconds is None else str(body.every_seconds),
        near_duplicate_bits=""
        if body.near_duplicate_bits is None
        else str(body.near_duplicate_bits),
        split=body.split,
        live="on" if body.live else "",
        live_rate="" if body.live_rate is None else str(body.live_rate),
        imgsz="" if body.imgsz is None else str(body.imgsz),
    )
    session, task = await _start(request, stores, name, chosen)
    return SessionStartedOut(session=SessionOut.of(session), task=TaskOut.of(task))


@api_router.get("/sessions/{session_id}/feed", response_model=FeedStatusOut)
async def api_feed_status(session_id: SessionId, stores: StoresDep) -> FeedStatusOut:
    """A stream session's feed: state (waiting, connecting, live, reconnecting, stalled,
    ended), frame rate, reconnects, the live view's boxes, the last capture."""
    return FeedStatusOut.of(await feed_service.feed_view(stores, session_id, recent=0))


@api_router.post(
    "/sessions/{session_id}/feed/capture",
    response_model=FeedCaptureOut,
    responses=error_responses(409),
)
async def api_capture_now(session_id: SessionId, stores: StoresDep) -> FeedCaptureOut:
    """Capture the feed's frame of this moment (a manual capture: never skipped as a
    near-duplicate; with the live view on, the model's boxes become pending suggestions). Waits
    up to 5 s for the feed's answer (``pending`` after that: it is still taken). 409 once the
    session has ended."""
    result = await feed_service.request_capture(stores, session_id)
    return FeedCaptureOut(
        id=str(result.get("id") or ""),
        outcome=str(result.get("outcome") or "pending"),
        message=str(result.get("message") or ""),
        filename=result.get("filename"),
        split=result.get("split"),
        suggestions=int(result.get("suggestions") or 0),
    )


@api_router.post("/sessions/{session_id}/feed/end", response_model=SessionOut)
async def api_end_feed(session_id: SessionId, stores: StoresDep) -> SessionOut:
    """End a stream session (``completed``): its worker closes the stream within a second; a
    session that has ended stays as it is."""
    return SessionOut.of(await feed_service.end_feed_session(stores, session_id))


__all__ = ["FeedIn", "api_router", "router"]
