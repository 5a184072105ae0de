"""The task runner: claims queued tasks and runs each in a worker subprocess.

One runs inside the server (so the server stays responsive and cancel means terminate), and
``ydc worker`` runs one on its own. Every loop it requeues stale tasks, refreshes the heartbeat of
the tasks whose worker process is alive, enforces cancels, and fills free slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field

from app.config import Settings
from app.domain.errors import Conflict, NotFound
from app.domain.models import TaskStatus
from app.domain.stores import TaskStore

log = logging.getLogger(__name__)

# A cancelled job gets this long to stop by itself (training saves its weights) before SIGTERM,
# and as long again before SIGKILL.
CANCEL_GRACE_S = 3.0


@dataclass
class Child:
    task_id: int
    worker: str
    process: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)
    cancel_seen_at: float | None = None
    terminated_at: float | None = None
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


class TaskRunner:
    def __init__(
        self,
        tasks: TaskStore,
        settings: Settings,
        *,
        slots: int | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self._tasks = tasks
        self._settings = settings
        self._slots = slots or settings.task_slots
        self._poll_s = poll_s
        self._name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.children: dict[str, Child] = {}  # by worker id
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_beat = 0.0

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        self._stopping.clear()
        self._loop_task = asyncio.create_task(self._run(), name=f"task-runner {self._name}")

    async def stop(self) -> None:
        """Stop claiming, terminate running workers (their tasks are requeued once stale)."""
        self._stopping.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        for child in list(self.children.values()):
            await self._terminate(child, wait_s=5.0)
        self.children.clear()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # the loop must survive a busy database or a bad row
                log.exception("task runner tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_s)

    async def tick(self) -> None:
        """One round of bookkeeping; public so tests can drive a runner step by step."""
        await self._reap()
        # Beat first: after the database was busy a while, our own live workers must not look
        # stale to the sweep below (which never touches them anyway).
        await self._beat_and_cancel()
        live = [child.worker for child in self.children.values()]
        for task_id in await self._tasks.requeue_stale(
            self._settings.task_heartbeat_s, exclude_workers=live
        ):
            log.warning("task %s went silent; requeued or failed", task_id)
        while len(self.children) < self._slots and not self._stopping.is_set():
            worker = f"{self._name}:{uuid.uuid4().hex[:6]}"
            task = await self._tasks.claim(worker)
            if task is None:
                break
            await self._spawn(task.id, worker)

    async def _spawn(self, task_id: int, worker: str) -> None:
        env = {**os.environ, **self._settings.as_env()}
        # The worker ends when this process does (see app.tasks.worker). On Linux the kernel
        # signals it when the thread that started it ends: the event loop's, which outlives it.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.tasks.worker",
            "run",
            str(task_id),
            worker,
            f"--parent-pid={os.getpid()}",
            env=env,
        )
        self.children[worker] = Child(task_id, worker, process)
        log.info("task %s started in worker pid %s", task_id, process.pid)

    def child_of(self, task_id: int) -> Child | None:
        """The live worker process running ``task_id``, if this runner has one."""
        return next((c for c in self.children.values() if c.task_id == task_id), None)

    async def _reap(self) -> None:
        for worker, child in list(self.children.items()):
            if child.process.returncode is None:
                continue
            del self.children[worker]
            await self._settle(child)

    async def _settle(self, child: Child) -> None:
        """After a worker exits: record a cancel it did not record itself. A worker that died
        otherwise leaves its task running; the heartbeat rule requeues it."""
        try:
            task = await self._tasks.get(child.task_id)
        except NotFound:
            return
        if task.status != TaskStatus.RUNNING or task.worker != child.worker:
            return
        if task.cancel_requested:
            with contextlib.suppress(Conflict):
                await self._tasks.finish(child.task_id, child.worker, status=TaskStatus.CANCELLED)
        else:
            log.warning(
                "worker of task %s exited with %s without finishing it",
                child.task_id,
                child.process.returncode,
            )

    async def _should_stop(self, child: Child, beat: bool) -> bool:
        """Whether the child must stop: a cancel was asked, or the task is no longer its own.
        A worker that just finished its task is left to exit by itself."""
        if beat:
            try:
                # The worker beats too; ours covers its start-up and long blocking steps.
                return await self._tasks.heartbeat(child.task_id, child.worker)
            except Conflict:
                pass
        task = await self._tasks.get(child.task_id)
        if task.worker == child.worker:
            return task.status == TaskStatus.RUNNING and task.cancel_requested
        return True  # requeued and taken elsewhere: this process must not go on writing

    async def _beat_and_cancel(self) -> None:
        due = time.monotonic() - self._last_beat >= self._settings.task_heartbeat_s / 4
        for child in list(self.children.values()):
            if child.process.returncode is not None:
                continue
            if child.cancel_seen_at is None:
                if await self._should_stop(child, due):
                    child.cancel_seen_at = time.monotonic()
                continue
            waited = time.monotonic() - child.cancel_seen_at
            if waited >= CANCEL_GRACE_S and child.terminated_at is None:
                child.terminated_at = time.monotonic()
                _signal(child, signal.SIGTERM)
            elif waited >= 2 * CANCEL_GRACE_S and not child.killed:
                child.killed = True
                _signal(child, signal.SIGKILL)
        if due:
            self._last_beat = time.monotonic()

    async def _terminate(self, child: Child, *, wait_s: float) -> None:
        if child.process.returncode is None:
            _signal(child, signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), wait_s)
            except TimeoutError:
                _signal(child, signal.SIGKILL)
                await child.process.wait()
        await self._settle(child)


def _signal(child: Child, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.process.send_signal(sig)
