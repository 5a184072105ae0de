"""Notification use cases: task ends for pages, a project's webhook settings, its deliveries,
and sending the due deliveries (``deliver_due``, which the sender loop calls).

Sending: a claimed delivery's body is built once (its first attempt) from the ended task and
kept, so every retry sends the same bytes; each attempt signs them with a fresh timestamp. One
attempt is one POST with a time limit that follows no redirect (a 3xx is a failure that names
where it pointed); a 2xx answer delivers it. Whatever goes wrong, an attempt is recorded (a
delivery is never left ``sending`` to be claimed again and again without a count). The POSTs
block, so they run on the executor the sender owns, never the default pool that the server's
other ``to_thread`` work shares; a round claims no more deliveries than that executor has
threads, so every attempt starts at once and ends within its claim.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.domain.errors import Invalid
from app.domain.stores import Stores
from app.domain.webhooks import (
    Delivery,
    DeliveryJob,
    ProjectWebhook,
    TaskEnded,
    build_payload,
    encode_body,
    new_secret,
    next_attempt_at,
    signed_headers,
    validate_webhook_url,
)
from app.services.projects import get_project

ERROR_MAX = 500

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendPolicy:
    """How deliveries are sent: attempts, first back-off (doubling, each wait capped at an
    hour), time limit per attempt, the base of the task links in bodies, and how many POSTs run
    at once (the sender's threads; also the most one round claims). The defaults retry for
    about 21 minutes (10, 20, 40 … 640 s), long enough for a receiver to restart."""

    attempts: int = 8
    backoff_s: float = 10.0
    timeout_s: float = 10.0
    base_url: str = "http://127.0.0.1:8000"
    workers: int = 4

    @property
    def lease_s(self) -> float:
        """How long a claim lasts: an attempt's time limit and a margin."""
        return self.timeout_s * 2 + 5


@dataclass(frozen=True)
class Answer:
    """What one POST got: the status code (``None`` when none came) and an error, if any."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


Post = Callable[[str, bytes, dict[str, str], float], Answer]


# --- pages' notifications --------------------------------------------------------------------


async def task_ends(
    stores: Stores, after: int | None, *, limit: int = 20
) -> tuple[int, list[TaskEnded]]:
    """Tasks that ended after the cursor ``after``, and the cursor to ask with next. Without a
    cursor (a page that just opened): none, and the current cursor, so that a page is told only
    of ends after it opened."""
    if after is None:
        return await stores.notification.last_end(), []
    ended = await stores.notification.ended_after(after, limit=limit)
    return (ended[-1].seq if ended else after), ended


# --- a project's webhook ---------------------------------------------------------------------


async def project_webhook(stores: Stores, project: str) -> ProjectWebhook:
    """The project's webhook (``url`` ``None`` when none). ``NotFound``."""
    return await stores.notification.webhook(project)


async def set_webhook(stores: Stores, project: str, url: str) -> tuple[ProjectWebhook, str | None]:
    """Set the webhook URL (``Invalid`` unless http/https); a project without a webhook gets a
    new secret, returned (to be shown once); otherwise the secret stays and ``None`` returns."""
    clean = validate_webhook_url(url)
    found = await get_project(stores, project)
    current = await stores.notification.webhook(found.name)
    secret = None if current.configured else new_secret()
    hook = await stores.notification.set_webhook(found.name, clean, secret=secret)
    return hook, secret


async def regenerate_secret(stores: Stores, project: str) -> tuple[ProjectWebhook, str]:
    """A new secret for the project's webhook (returned once); the old one stops working for
    the next attempt. ``Invalid`` when there is no webhook."""
    current = await stores.notification.webhook(project)
    if not current.configured or current.url is None:
        raise Invalid("Set a webhook URL first; its secret is made with it.")
    secret = new_secret()
    return await stores.notification.set_webhook(
        current.project, current.url, secret=secret
    ), secret


async def remove_webhook(stores: Stores, project: str) -> None:
    """No more webhook for the project; its deliveries not sent yet fail."""
    await stores.notification.remove_webhook(project)


async def project_deliveries(stores: Stores, project: str, *, limit: int = 20) -> list[Delivery]:
    """The project's recent deliveries, newest first."""
    return await stores.notification.deliveries(project=project, limit=limit)


async def recent_deliveries(
    stores: Stores, *, limit: int = 20, before_id: int | None = None
) -> list[Delivery]:
    """Every project's recent deliveries, newest first."""
    return await stores.notification.deliveries(limit=limit, before_id=before_id)


async def task_deliveries(stores: Stores, task_ids: list[int]) -> dict[int, Delivery]:
    """The newest delivery of each of these tasks that has one."""
    latest: dict[int, Delivery] = {}
    for found in await stores.notification.deliveries(task_ids=task_ids, limit=len(task_ids) * 4):
        latest.setdefault(found.task_id, found)
    return latest


async def get_delivery(stores: Stores, delivery_id: int) -> Delivery:
    """One delivery. ``NotFound``."""
    return await stores.notification.delivery(delivery_id)


async def retry_delivery(stores: Stores, delivery_id: int) -> Delivery:
    """Send a waiting or failed delivery again now (one more attempt). ``Conflict`` for one
    delivered or in flight."""
    return await stores.notification.retry_delivery(delivery_id)


# --- sending ---------------------------------------------------------------------------------


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
    """POST ``body`` to ``url`` (blocking: run it in a thread). Redirects are not followed.
    Never raises: every error (a non-ASCII URL saved before they were refused included) is a
    failed ``Answer``."""
    try:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        host = parts.hostname or ""
        connection = connection_type(host, parts.port, timeout=timeout_s)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            status = response.status
            location = response.getheader("Location")
            response.read(64 * 1024)  # let the receiver finish; what it says is not kept
        finally:
            connection.close()
    except TimeoutError:
        return Answer(None, f"no answer within {timeout_s:g} s")
    except Exception as error:  # OSError, HTTPException, UnicodeEncodeError, a bad port, …
        return Answer(None, _short(f"{type(error).__name__}: {error}"))
    if 300 <= status < 400:
        return Answer(status, _short(f"answered {status} (redirects are not followed): {location}"))
    if not 200 <= status < 300:
        return Answer(status, f"answered {status}")
    return Answer(status)


def _short(text: str) -> str:
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


async def send_one(
    stores: Stores,
    job: DeliveryJob,
    sender: str,
    policy: SendPolicy,
    post: Post,
    executor: Executor | None = None,
) -> bool:
    """One attempt of a claimed delivery on ``executor`` (``None``: the loop's default),
    recorded whatever happens; whether it was delivered."""
    body = job.body or b""
    try:
        if not body:
            url = f"{policy.base_url}/tasks/{job.task.id}"
            body = encode_body(build_payload(job.task, delivery_id=job.id, task_url=url))
        headers = signed_headers(
            job.secret, body, timestamp=int(time.time()), event=job.event, delivery_id=job.id
        )
        answer = await asyncio.get_running_loop().run_in_executor(
            executor, post, job.url, body, headers, policy.timeout_s
        )
    except Exception as error:  # a bug here must not leave the delivery "sending" for ever
        log.exception("webhook delivery %s: the attempt failed unexpectedly", job.id)
        answer = Answer(None, _short(f"could not send: {type(error).__name__}: {error}"))
    attempts = job.attempts + 1
    await stores.notification.record_attempt(
        job.id,
        sender,
        body=body,
        delivered=answer.delivered,
        status_code=answer.status,
        error=answer.error,
        next_attempt_at=None
        if answer.delivered
        else next_attempt_at(
            attempts, max_attempts=policy.attempts, base_s=policy.backoff_s, now=time.time()
        ),
    )
    return answer.delivered


async def deliver_due(
    stores: Stores,
    sender: str,
    policy: SendPolicy,
    *,
    post: Post = post_json,
    executor: Executor | None = None,
) -> int:
    """Claim due deliveries (at most ``policy.workers``) and make one attempt of each, at once
    on ``executor``; how many were tried. A read first, so a sender with nothing to do writes
    nothing."""
    if not await stores.notification.due_deliveries(now=time.time()):
        return 0
    jobs = await stores.notification.claim_deliveries(
        sender, now=time.time(), lease_s=policy.lease_s, limit=policy.workers
    )
    await asyncio.gather(*(send_one(stores, job, sender, policy, post, executor) for job in jobs))
    return len(jobs)
