"""Notifications of task ends: the notices pages poll for, and a project's signed webhook.

Every task end (succeeded, failed, cancelled; whoever ended it) gets the next number of one
sequence (``TaskEnded.seq``), in the transaction that ends it. Write transactions take turns on
both databases, so the numbers grow in commit order, and a page that asks "what ended after
seq N" never misses one that committed late (a time stamp could: clocks differ between
machines, and a stamp is taken before the commit).

A project with a webhook gets, in that same transaction, a delivery row: the end is never lost
between the task's commit and the POST. A sender loop claims due deliveries (a lease, so one
sender sends each), POSTs the JSON body signed with the project's secret, and records the
attempt; a failure is tried again after a back-off that doubles (each wait at most
``RETRY_MAX_S``), until the attempts run out.

Signature: ``X-Ydc-Signature: sha256=<hex>``, the HMAC-SHA256 with the secret of
``<X-Ydc-Timestamp>.<raw body>``; the timestamp (whole seconds) is in the signed material so a
captured request cannot be replayed later with a fresh timestamp. This module is pure.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from app.domain.errors import Invalid
from app.domain.models import TaskInfo, TaskStatus

SIGNATURE_HEADER = "X-Ydc-Signature"
TIMESTAMP_HEADER = "X-Ydc-Timestamp"
EVENT_HEADER = "X-Ydc-Event"
DELIVERY_HEADER = "X-Ydc-Delivery"
SECRET_PREFIX = "whsec_"
URL_MAX = 2000
# A receiver should refuse a timestamp further than this from its clock.
TOLERANCE_S = 300
SUMMARY_KEYS = 20
SUMMARY_TEXT = 200
# The longest wait between two attempts, however many there are and whatever the base.
RETRY_MAX_S = 3600.0


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (the first, or after a failure)
    SENDING = "sending"  # claimed by a sender, attempt in flight
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # every attempt failed (or the webhook was removed); "retry" sends again


@dataclass(frozen=True)
class ProjectWebhook:
    """A project's webhook: where task ends are POSTed and the secret they are signed with
    (``url`` ``None``: none set)."""

    project: str
    url: str | None = None
    secret: str | None = None
    updated_at: float | None = None

    @property
    def configured(self) -> bool:
        return self.url is not None

    @property
    def secret_hint(self) -> str:
        """The secret masked, for pages: its prefix and last four characters."""
        return mask_secret(self.secret) if self.secret else ""


@dataclass(frozen=True)
class Delivery:
    """One task end to POST to one project's webhook, and how its attempts went."""

    id: int
    task_id: int
    project: str | None
    event: str
    url: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float | None = None
    last_attempt_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    task_kind: str | None = None

    @property
    def failing(self) -> bool:
        """Given up, or waiting to try again after a failed attempt."""
        return self.state == DeliveryState.FAILED or (
            self.state != DeliveryState.DELIVERED and self.last_error is not None
        )


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery, with what sending it needs. ``body`` is the JSON sent by its first
    attempt (``None`` before: the sender builds it once, so every retry sends the same bytes)."""

    id: int
    url: str
    secret: str
    attempts: int
    event: str
    task: TaskInfo
    body: bytes | None = None


@dataclass(frozen=True)
class TaskEnded:
    """A task that ended, with its place in the sequence of ends."""

    seq: int
    task: TaskInfo


# --- pure rules ------------------------------------------------------------------------------


def validate_webhook_url(url: str) -> str:
    """The URL, trimmed, if it is an absolute ``http``/``https`` URL with a host, in ASCII and
    without user info; ``Invalid`` (a 422 with the reason) otherwise. Non-ASCII URLs are refused,
    not encoded: the admin writes the exact bytes that will be sent."""
    text = url.strip()
    if not text:
        raise Invalid("Give the webhook's URL (http:// or https://).")
    if len(text) > URL_MAX:
        raise Invalid(f"The URL is {len(text)} characters long; at most {URL_MAX} are allowed.")
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise Invalid("The URL must not contain spaces or control characters.")
    if not text.isascii():
        raise Invalid(
            "The URL must be plain ASCII: percent-encode other characters of the path "
            "(%C3%B6 for ö) and write an international host name in its xn-- form."
        )
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise Invalid(f"That is not a valid URL: {error}.") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise Invalid(f"A webhook URL must start with http:// or https:// (it has {shown}).")
    if not parts.hostname:
        raise Invalid("The URL has no host name.")
    if "@" in parts.netloc:
        raise Invalid(
            "A webhook URL cannot carry a user name or password (user:pass@host): they would "
            "not be sent. Put a token in the path or query instead; the signature proves the "
            "sender."
        )
    if port == 0:
        raise Invalid("The URL's port must be between 1 and 65535.")
    if parts.fragment:
        raise Invalid("A webhook URL cannot have a #fragment.")
    return text


def new_secret() -> str:
    """A fresh shared secret (192 random bits)."""
    return SECRET_PREFIX + secrets.token_hex(24)


def mask_secret(secret: str) -> str:
    """``whsec_…1a2b``: enough to tell two secrets apart, not to use one."""
    return f"{SECRET_PREFIX}…{secret[-4:]}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ydc-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of
    ``<timestamp>.<body>`` keyed with the secret."""
    signed = str(int(timestamp)).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """What a receiver checks: the timestamp is recent and the signature matches."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance_s:
        return False
    # Bytes, not str: compare_digest refuses a str with non-ASCII characters (a TypeError).
    return hmac.compare_digest(signature(secret, stamp, body).encode(), header.encode())


def retry_delay(attempts: int, base_s: float) -> float:
    """How long to wait after the ``attempts``-th failed attempt: ``base_s`` doubled each
    time (10 s, 20 s, 40 s, … with a base of 10 s), at most ``RETRY_MAX_S``."""
    doublings = min(max(0, attempts - 1), 64)  # 2**64 times any base is past the cap
    return min(base_s * 2.0**doublings, RETRY_MAX_S)


def backoff_schedule(max_attempts: int, base_s: float) -> list[float]:
    """The waits between ``max_attempts`` attempts (one fewer than the attempts)."""
    return [retry_delay(n, base_s) for n in range(1, max_attempts)]


def next_attempt_at(attempts: int, *, max_attempts: int, base_s: float, now: float) -> float | None:
    """When to try again after the ``attempts``-th attempt failed; ``None``: give up."""
    if attempts >= max_attempts:
        return None
    return now + retry_delay(attempts, base_s)


def event_name(status: str) -> str:
    """``task.succeeded``, ``task.failed`` or ``task.cancelled``."""
    final = TaskStatus(status)
    if not final.finished:
        raise Invalid(f"A task that is {status} has not ended.")
    return f"task.{final.value}"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SUMMARY_TEXT:
        return value[: SUMMARY_TEXT - 1] + "…"
    return value


def result_summary(result: dict[str, Any] | None) -> dict[str, Any]:
    """The task's result cut down for a notification: its scalar values and its flat
    mappings of scalars (counts per split, per reason), at most ``SUMMARY_KEYS`` of each;
    lists and deeper structures (an evaluation's matrix) are left out, long texts shortened."""
    summary: dict[str, Any] = {}
    for key, value in (result or {}).items():
        if len(summary) >= SUMMARY_KEYS:
            break
        if _scalar(value):
            summary[str(key)] = _short(value)
        elif isinstance(value, dict) and all(_scalar(v) for v in value.values()):
            items = list(value.items())[:SUMMARY_KEYS]
            summary[str(key)] = {str(k): _short(v) for k, v in items}
    return summary


def build_payload(task: TaskInfo, *, delivery_id: int, task_url: str) -> dict[str, Any]:
    """The JSON a webhook receives for a task's end (documented in the README)."""
    return {
        "event": event_name(task.status),
        "delivery": delivery_id,
        "task": {
            "id": task.id,
            "kind": task.kind,
            "status": task.status,
            "project": task.dataset,
            "created_at": task.created_at,
            "started_at": task.started_at,
            "finished_at": task.finished_at,
            "attempts": task.attempts,
            "message": task.message,
            "error": task.error,
            "result": result_summary(task.result),
            "url": task_url,
        },
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact JSON, keys sorted, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(
    secret: str, body: bytes, *, timestamp: int, event: str, delivery_id: int
) -> dict[str, str]:
    """The headers of one attempt (the signature covers this attempt's timestamp)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "ydc-webhook/1",
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


# --- the store -------------------------------------------------------------------------------


class NotificationStore(ABC):
    """Task ends for pages, projects' webhooks and their deliveries."""

    @abstractmethod
    async def last_end(self) -> int:
        """The newest task end's ``seq`` (0 when no task has ended)."""

    @abstractmethod
    async def ended_after(self, seq: int, *, limit: int = 20) -> builtins.list[TaskEnded]:
        """Tasks that ended after ``seq``, oldest end first, at most ``limit``."""

    @abstractmethod
    async def webhook(self, project: str) -> ProjectWebhook:
        """The project's webhook (``url`` ``None`` when none is set). ``NotFound``."""

    @abstractmethod
    async def set_webhook(
        self, project: str, url: str, *, secret: str | None = None
    ) -> ProjectWebhook:
        """Set the project's webhook URL; ``secret`` replaces the secret (``None`` keeps it;
        ``Invalid`` when the project has no secret yet). ``NotFound``."""

    @abstractmethod
    async def remove_webhook(self, project: str) -> None:
        """Remove the project's webhook; its deliveries not yet sent are failed then."""

    @abstractmethod
    async def deliveries(
        self,
        *,
        project: str | None = None,
        task_ids: builtins.list[int] | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> builtins.list[Delivery]:
        """Deliveries, newest first (keyset with ``before_id``), of a project or some tasks."""

    @abstractmethod
    async def delivery(self, delivery_id: int) -> Delivery:
        """One delivery. ``NotFound``."""

    @abstractmethod
    async def due_deliveries(self, *, now: float) -> bool:
        """Whether a delivery is due (a read: cheap enough for every tick of a sender)."""

    @abstractmethod
    async def claim_deliveries(
        self, sender: str, *, now: float, lease_s: float, limit: int = 10
    ) -> builtins.list[DeliveryJob]:
        """Take due deliveries for ``sender`` until ``now + lease_s`` (one whose sender went
        silent past its lease is due again). Two senders never get the same one."""

    @abstractmethod
    async def record_attempt(
        self,
        delivery_id: int,
        sender: str,
        *,
        body: bytes,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
    ) -> bool:
        """Record an attempt of a delivery ``sender`` holds: delivered, or failed and due again
        at ``next_attempt_at`` (``None``: given up). ``False`` when it is no longer held."""

    @abstractmethod
    async def retry_delivery(self, delivery_id: int) -> Delivery:
        """Make a delivery that is waiting or has failed due now (one more attempt).
        ``Conflict`` for one delivered or being sent; ``NotFound``."""
