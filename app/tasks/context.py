"""What a running job sees: progress reporting, heartbeats and cooperative cancel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from app.domain.errors import Cancelled, Conflict
from app.domain.models import TaskInfo
from app.domain.stores import TaskStore

log = logging.getLogger(__name__)

# Progress is written at most this often: a job may report every file of 100k images.
PROGRESS_INTERVAL_S = 0.05


class TaskContext:
    def __init__(
        self,
        task: TaskInfo,
        worker: str,
        tasks: TaskStore,
        heartbeat_s: float,
        *,
        import_roots: Sequence[Path] = (),
    ) -> None:
        self.task = task
        self.import_roots = list(import_roots)  # where an import's folder links may lead
        self.worker = worker
        self._tasks = tasks
        self._interval = max(0.05, heartbeat_s / 4)
        self._last_write = 0.0
        self.cancel_requested = False
        self.lost = False  # the task was taken from us (requeued or finished elsewhere)
        self._beat: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TaskContext:
        self._beat = asyncio.create_task(self._heartbeat_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._write(None, None)

    async def _write(self, fraction: float | None, message: str | None) -> None:
        try:
            if await self._tasks.heartbeat(
                self.task.id, self.worker, progress=fraction, message=message
            ):
                self.cancel_requested = True
        except Conflict:
            self.lost = True
            self.cancel_requested = True
        except Exception:  # a busy database must not kill the job; the next beat retries
            log.warning("heartbeat of task %s failed", self.task.id, exc_info=True)
        self._last_write = time.monotonic()

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; raises ``Cancelled`` once a cancel has been requested."""
        if fraction >= 1.0 or time.monotonic() - self._last_write >= PROGRESS_INTERVAL_S:
            await self._write(fraction, message)
        self.check_cancelled()

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise Cancelled(f"Task {self.task.id} was cancelled.")
