"""Notifications: the task ends every page polls for (``static/notify.js``), a project's
webhook settings box, webhook deliveries (listed on the tasks page, retried by hand), and the
same in the JSON API.

A webhook's URL may itself be a credential (many chat services put their token in it), so its
settings are an admin's to read and change; other roles see only whether one is set.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from app.domain.accounts import Role
from app.domain.errors import Invalid
from app.domain.webhooks import Delivery, ProjectWebhook, TaskEnded
from app.services import notifications as notify_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import error_responses
from app.web.formatting import task_title
from app.web.permissions import current_login
from app.web.render import is_htmx, redirect, render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(
    prefix="/api/v1", tags=["notifications"], dependencies=[Depends(require_csrf)]
)

Cursor = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]
BOX = "projects/_webhook.html"


def _admin(request: Request) -> bool:
    """Whether this request may see and change webhooks (everyone, with accounts off)."""
    login = current_login(request)
    return login is None or login.user.may(Role.ADMIN)


# --- schemas ---------------------------------------------------------------------------------


class NoticeOut(BaseModel):
    """A task that ended."""

    seq: int = Field(description="Its place in the sequence of task ends.")
    id: int
    kind: str
    title: str = Field(description="The kind in words (`Export`, `Training`…).")
    status: str = Field(description="`succeeded`, `failed` or `cancelled`.")
    project: str | None
    message: str
    error: str | None
    finished_at: float | None
    url: str = Field(description="The task's page.")

    @classmethod
    def of(cls, ended: TaskEnded) -> NoticeOut:
        task = ended.task
        return cls(
            seq=ended.seq,
            id=task.id,
            kind=task.kind,
            title=task_title(task.kind),
            status=task.status,
            project=task.dataset,
            message=task.message,
            error=task.error,
            finished_at=task.finished_at,
            url=f"/tasks/{task.id}",
        )


class NoticesOut(BaseModel):
    """Tasks that ended after the cursor asked with, and the cursor to ask with next."""

    cursor: int
    tasks: list[NoticeOut]


class WebhookIn(BaseModel):
    url: str = Field(max_length=4000, description="An http:// or https:// URL.")


class WebhookOut(BaseModel):
    """A project's webhook. ``secret`` is there only in the answer that made it."""

    project: str
    url: str | None
    configured: bool
    secret_hint: str = Field(description="The secret masked (`whsec_…1a2b`); empty without one.")
    secret: str | None = Field(
        None, description="The new secret, only when this answer made it: keep it now."
    )
    updated_at: float | None

    @classmethod
    def of(cls, hook: ProjectWebhook, secret: str | None = None) -> WebhookOut:
        return cls(
            project=hook.project,
            url=hook.url,
            configured=hook.configured,
            secret_hint=hook.secret_hint,
            secret=secret,
            updated_at=hook.updated_at,
        )


class DeliveryOut(BaseModel):
    """One task end POSTed (or to be POSTed) to a project's webhook."""

    id: int
    task_id: int
    task_kind: str | None
    project: str | None
    event: str
    url: str
    state: str = Field(description="`pending`, `sending`, `delivered` or `failed`.")
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: float | None
    last_attempt_at: float | None
    created_at: float
    delivered_at: float | None

    @classmethod
    def of(cls, found: Delivery) -> DeliveryOut:
        return cls(
            id=found.id,
            task_id=found.task_id,
            task_kind=found.task_kind,
            project=found.project,
            event=found.event,
            url=found.url,
            state=found.state,
            attempts=found.attempts,
            last_status=found.last_status,
            last_error=found.last_error,
            next_attempt_at=found.next_attempt_at,
            last_attempt_at=found.last_attempt_at,
            created_at=found.created_at,
            delivered_at=found.delivered_at,
        )


# --- JSON API --------------------------------------------------------------------------------


@api_router.get("/notifications", response_model=NoticesOut)
async def notifications(
    stores: StoresDep,
    response: Response,
    after: Cursor = None,
    limit: int = Query(20, ge=1, le=100),
) -> NoticesOut:
    """Tasks that ended after ``after`` (oldest first); without ``after``, none and the
    current cursor (what a page that just opened starts from)."""
    cursor, ended = await notify_service.task_ends(stores, after, limit=limit)
    response.headers["Cache-Control"] = "no-store"
    return NoticesOut(cursor=cursor, tasks=[NoticeOut.of(e) for e in ended])


@api_router.get("/projects/{name}/webhook", response_model=WebhookOut)
async def get_webhook(name: str, stores: StoresDep) -> WebhookOut:
    """The project's webhook: URL and masked secret (admins)."""
    return WebhookOut.of(await notify_service.project_webhook(stores, name))


@api_router.put("/projects/{name}/webhook", response_model=WebhookOut)
async def put_webhook(name: str, body: WebhookIn, stores: StoresDep) -> WebhookOut:
    """Set the webhook URL (http or https). The first time, the answer carries the new
    ``secret``: the only time it is shown."""
    hook, secret = await notify_service.set_webhook(stores, name, body.url)
    return WebhookOut.of(hook, secret)


@api_router.post("/projects/{name}/webhook/secret", response_model=WebhookOut)
async def new_webhook_secret(name: str, stores: StoresDep) -> WebhookOut:
    """A new secret for the webhook, in this answer only (422 without a webhook)."""
    hook, secret = await notify_service.regenerate_secret(stores, name)
    return WebhookOut.of(hook, secret)


@api_router.delete("/projects/{name}/webhook", status_code=204)
async def delete_webhook(name: str, stores: StoresDep) -> Response:
    """Remove the webhook; its deliveries not sent yet fail."""
    await notify_service.remove_webhook(stores, name)
    return Response(status_code=204)


@api_router.get("/projects/{name}/webhook/deliveries", response_model=list[DeliveryOut])
async def project_deliveries(
    name: str, stores: StoresDep, limit: int = Query(20, ge=1, le=200)
) -> list[DeliveryOut]:
    """The project's webhook deliveries, newest first, with their state."""
    found = await notify_service.project_deliveries(stores, name, limit=limit)
    return [DeliveryOut.of(d) for d in found]


@api_router.get("/webhook-deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    stores: StoresDep,
    limit: int = Query(20, ge=1, le=200),
    before_id: int | None = Query(None, ge=1, le=2**63 - 1),
) -> list[DeliveryOut]:
    """Every project's webhook deliveries, newest first (keyset paging with ``before_id``)."""
    found = await notify_service.recent_deliveries(stores, limit=limit, before_id=before_id)
    return [DeliveryOut.of(d) for d in found]


@api_router.get("/webhook-deliveries/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(delivery_id: DeliveryId, stores: StoresDep) -> DeliveryOut:
    """One delivery and how its attempts went."""
    return DeliveryOut.of(await notify_service.get_delivery(stores, delivery_id))


@api_router.post(
    "/webhook-deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=error_responses(409),
)
async def retry_delivery_api(delivery_id: DeliveryId, stores: StoresDep) -> DeliveryOut:
    """Send a waiting or failed delivery again now; 409 once delivered or while sending."""
    return DeliveryOut.of(await notify_service.retry_delivery(stores, delivery_id))


# --- pages -----------------------------------------------------------------------------------


async def _box(
    request: Request,
    stores: StoresDep,
    name: str,
    *,
    secret: str | None = None,
    error: str | None = None,
    typed: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    admin = _admin(request)
    hook = await notify_service.project_webhook(stores, name)
    deliveries = await notify_service.project_deliveries(stores, hook.project, limit=5)
    context: dict[str, Any] = {
        "nav": "projects",
        "project_name": hook.project,
        "webhook": hook,
        "admin": admin,
        "new_secret": secret,
        "webhook_error": error,
        "typed_url": typed if typed is not None else (hook.url or "") if admin else "",
        "deliveries": deliveries if admin else [],
        "failing": sum(1 for d in deliveries if d.failing),
    }
    response = render(request, "pages/webhook.html", context, fragment=BOX, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"  # a fresh secret must not be cached
    return response


@router.get("/projects/{name}/webhook", response_class=HTMLResponse)
async def webhook_box(request: Request, name: str, stores: StoresDep) -> HTMLResponse:
    """The project's webhook settings (the box on the project page, a page of its own)."""
    return await _box(request, stores, name)


@router.post("/projects/{name}/webhook")
async def save_webhook(
    request: Request, name: str, stores: StoresDep, url: Annotated[str, Form()] = ""
) -> Response:
    """Set the URL; a bad one comes back in the box with the reason (422), nothing changed."""
    try:
        _, secret = await notify_service.set_webhook(stores, name, url)
    except Invalid as error:
        return await _box(
            request, stores, name, error=error.message, typed=url[:4000], status_code=422
        )
    return await _box(request, stores, name, secret=secret)


@router.post("/projects/{name}/webhook/secret")
async def regenerate_webhook_secret(request: Request, name: str, stores: StoresDep) -> Response:
    """A new secret, shown once in the box."""
    try:
        _, secret = await notify_service.regenerate_secret(stores, name)
    except Invalid as error:
        return await _box(request, stores, name, error=error.message, status_code=422)
    return await _box(request, stores, name, secret=secret)


@router.post("/projects/{name}/webhook/remove")
async def remove_webhook(request: Request, name: str, stores: StoresDep) -> Response:
    """No more webhook for the project."""
    await notify_service.remove_webhook(stores, name)
    return await _box(request, stores, name)


@router.post("/webhook-deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: DeliveryId, stores: StoresDep) -> Response:
    """Send a delivery again now; back to the tasks page (htmx: the deliveries list)."""
    await notify_service.retry_delivery(stores, delivery_id)
    if is_htmx(request):
        return await deliveries_fragment(request, stores)
    return redirect(request, "/tasks#webhook-deliveries")


@router.get("/webhook-deliveries", response_class=HTMLResponse)
async def deliveries_fragment(request: Request, stores: StoresDep) -> HTMLResponse:
    """The recent deliveries list (the tasks page's section, which polls it)."""
    found = await notify_service.recent_deliveries(stores, limit=20)
    response = render(
        request,
        "pages/webhook_deliveries.html",
        {"nav": "tasks", "deliveries": found},
        fragment="tasks/_deliveries.html",
    )
    response.headers["Cache-Control"] = "no-store"
    return response
