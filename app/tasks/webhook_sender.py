"""The loop that sends webhook deliveries, beside the task runner (never inside a request).

The server runs one whatever ``YDC_RUN_TASKS`` says (so a server that leaves tasks to workers on
other machines still sends their ends). Several senders may run against one database: each
claims its deliveries with a lease, so every delivery is sent by one of them. The POSTs run on
the sender's own few threads, so receivers that do not answer hold those threads only, never
the default pool the rest of the server uses for its ``to_thread`` work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

from app.config import Settings
from app.domain.stores import Stores
from app.services.notifications import Post, SendPolicy, deliver_due, post_json

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> SendPolicy:
    """The send policy ``settings`` ask for (``YDC_WEBHOOK_*``, ``YDC_PUBLIC_URL``)."""
    return SendPolicy(
        attempts=settings.webhook_attempts,
        backoff_s=settings.webhook_backoff_s,
        timeout_s=settings.webhook_timeout_s,
        base_url=settings.base_url,
    )


class WebhookSender:
    """The sending loop, with its thread pool (``policy.workers`` threads) from ``start`` to
    ``stop``."""

    def __init__(
        self, stores: Stores, policy: SendPolicy, *, poll_s: float = 0.5, post: Post = post_json
    ) -> None:
        self._stores = stores
        self._policy = policy
        self._poll_s = poll_s
        self._post = post
        self.name = f"{socket.gethostname()}:{os.getpid()}:webhooks:{uuid.uuid4().hex[:8]}"
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(
            max_workers=self._policy.workers, thread_name_prefix="ydc-webhook"
        )
        self._loop_task = asyncio.create_task(self._run(), name=f"webhook-sender {self.name}")

    async def stop(self) -> None:
        """Stop after the attempts in flight (each has its time limit)."""
        self._stopping.set()
        try:
            if self._loop_task is not None:
                await self._loop_task
                self._loop_task = None
        finally:
            if self._executor is not None:
                # Nothing is in flight once the loop has ended; do not block the event loop.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    async def tick(self) -> int:
        """One round: claim and send what is due; public so tests can drive it."""
        return await deliver_due(
            self._stores, self.name, self._policy, post=self._post, executor=self._executor
        )

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # the loop must survive a busy database
                log.exception("webhook sender tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_s)
