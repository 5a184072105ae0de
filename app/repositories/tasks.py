"""``TaskStore`` on SQLAlchemy: the ``task`` table is the queue.

Claiming is one short write transaction (``BEGIN IMMEDIATE`` on SQLite; ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so two runners never take the same task. Every update a worker makes is
conditional on the task still being ``running`` for that worker, so a worker whose task was
requeued after it went silent cannot overwrite its successor's work.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
from typing import Any

from sqlalchemy import select, update

from app.db.models import Project, Task, TrainingEpoch
from app.db.uow import Database
from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.models import TaskInfo, TaskStatus
from app.domain.stores import TaskStore
from app.repositories.common import id_window, now, project_by_name
from app.repositories.task_ends import record_end


class SqlTaskStore(TaskStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _info(row: Task, project_name: str | None) -> TaskInfo:
        return TaskInfo(
            id=row.id,
            kind=row.kind,
            status=row.status,
            progress=row.progress,
            message=row.message,
            params=dict(row.params or {}),
            result=dict(row.result) if row.result is not None else None,
            error=row.error,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            cancel_requested=row.cancel_requested,
            worker=row.worker,
            heartbeat_at=row.heartbeat_at,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            dataset=project_name,
        )

    @staticmethod
    def _select():  # type: ignore[no-untyped-def]
        return select(Task, Project.name).outerjoin(Project, Task.project_id == Project.id)

    async def enqueue(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        dataset: str | None = None,
        max_attempts: int = 3,
    ) -> TaskInfo:
        if max_attempts < 1:
            raise Invalid("A task needs at least one attempt.")
        async with self._db.unit() as uow:
            project = await project_by_name(uow.session, dataset) if dataset else None
            row = Task(
                kind=kind,
                status=TaskStatus.QUEUED,
                project_id=project.id if project else None,
                progress=0.0,
                message="queued",
                params=dict(params or {}),
                attempts=0,
                max_attempts=max_attempts,
                cancel_requested=False,
                created_at=now(),
            )
            uow.session.add(row)
            await uow.commit()
            return self._info(row, project.name if project else None)

    async def get(self, task_id: int) -> TaskInfo:
        async with self._db.reader() as session:
            found = (await session.execute(self._select().where(Task.id == task_id))).first()
        if found is None:
            raise NotFound(f"There is no task {task_id}.")
        return self._info(found[0], found[1])

    async def list(
        self,
        *,
        dataset: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
        kinds: builtins.list[str] | None = None,
    ) -> list[TaskInfo]:
        async with self._db.reader() as session:
            query = self._select().order_by(Task.id.desc()).limit(limit)
            if kinds is not None:
                query = query.where(Task.kind.in_(kinds))
            if dataset is not None:
                project = await project_by_name(session, dataset)
                query = query.where(Task.project_id == project.id)
            query = query.where(*id_window(session, Task.id, after_id=None, before_id=before_id))
            rows = (await session.execute(query)).all()
        return [self._info(row, name) for row, name in rows]

    async def claim(
        self, worker: str, *, kinds: builtins.list[str] | None = None
    ) -> TaskInfo | None:
        async with self._db.unit() as uow:
            query = (
                select(Task.id)
                .where(Task.status == TaskStatus.QUEUED)
                .order_by(Task.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if kinds is not None:
                query = query.where(Task.kind.in_(kinds))
            task_id = await uow.session.scalar(query)
            if task_id is None:
                return None
            stamp = now()
            claimed = await uow.session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.QUEUED)
                .values(
                    status=TaskStatus.RUNNING,
                    worker=worker,
                    attempts=Task.attempts + 1,
                    heartbeat_at=stamp,
                    started_at=stamp,
                    message="starting",
                )
                .execution_options(synchronize_session=False)
            )
            await uow.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await self.get(task_id)

    async def heartbeat(
        self,
        task_id: int,
        worker: str,
        *,
        progress: float | None = None,
        message: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {"heartbeat_at": now()}
        if progress is not None:
            values["progress"] = min(1.0, max(0.0, float(progress)))
        if message is not None:
            values["message"] = message
        async with self._db.unit() as uow:
            cancel = await uow.session.scalar(
                update(Task)
                .where(Task.id == task_id, Task.worker == worker, Task.status == TaskStatus.RUNNING)
                .values(**values)
                .returning(Task.cancel_requested)
                .execution_options(synchronize_session=False)
            )
            await uow.commit()
        if cancel is None:
            raise Conflict(f"Task {task_id} is no longer running for this worker.")
        return bool(cancel)

    async def finish(
        self,
        task_id: int,
        worker: str,
        *,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> TaskInfo:
        if status not in TaskStatus.__members__.values() or not TaskStatus(status).finished:
            raise Invalid(f"{status!r} is not a final task status (succeeded, failed, cancelled).")
        final = TaskStatus(status)
        values: dict[str, Any] = {
            "status": final,
            "result": result,
            "error": error,
            "finished_at": now(),
            "heartbeat_at": now(),
            "message": {"succeeded": "done", "failed": "failed", "cancelled": "cancelled"}[final],
        }
        if final == TaskStatus.SUCCEEDED:
            values["progress"] = 1.0
        async with self._db.unit() as uow:
            done = await uow.session.execute(
                update(Task)
                .where(Task.id == task_id, Task.worker == worker, Task.status == TaskStatus.RUNNING)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                # The end's notice and webhook delivery commit with the end itself.
                await record_end(uow.session, task_id, at=values["finished_at"])
            await uow.commit()
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"Task {task_id} is no longer running for this worker.")
        return await self.get(task_id)

    async def record_epoch(self, task_id: int, epoch: int, metrics: dict[str, Any]) -> None:
        async with self._db.unit() as uow:
            session = uow.session
            if await session.get(Task, task_id) is None:
                raise NotFound(f"There is no task {task_id}.")
            row = await session.scalar(
                select(TrainingEpoch).where(
                    TrainingEpoch.task_id == task_id, TrainingEpoch.epoch == epoch
                )
            )
            if row is None:
                session.add(
                    TrainingEpoch(task_id=task_id, epoch=epoch, metrics=metrics, created_at=now())
                )
            else:
                row.metrics, row.created_at = metrics, now()
            await uow.commit()

    async def epochs(self, task_id: int) -> builtins.list[dict[str, Any]]:
        async with self._db.reader() as session:
            rows = await session.execute(
                select(TrainingEpoch.epoch, TrainingEpoch.metrics)
                .where(TrainingEpoch.task_id == task_id)
                .order_by(TrainingEpoch.epoch)
            )
            return [{"epoch": epoch, **metrics} for epoch, metrics in rows]

    async def request_cancel(self, task_id: int) -> TaskInfo:
        async with self._db.unit() as uow:
            row = await uow.session.get(Task, task_id)
            if row is None:
                raise NotFound(f"There is no task {task_id}.")
            if row.status == TaskStatus.QUEUED:
                row.status = TaskStatus.CANCELLED
                row.finished_at = now()
                row.message = "cancelled before it started"
                await uow.session.flush()
                await record_end(uow.session, task_id, at=row.finished_at)
            elif row.status == TaskStatus.RUNNING:
                row.cancel_requested = True
                row.message = "cancelling…"
            await uow.commit()
        return await self.get(task_id)

    async def requeue_stale(
        self, heartbeat_timeout_s: float, *, exclude_workers: Collection[str] = ()
    ) -> builtins.list[int]:
        cutoff = now() - heartbeat_timeout_s
        excluded = set(exclude_workers)
        changed: builtins.list[int] = []
        async with self._db.unit() as uow:
            stale = (
                await uow.session.execute(
                    select(
                        Task.id,
                        Task.worker,
                        Task.attempts,
                        Task.max_attempts,
                        Task.cancel_requested,
                    ).where(Task.status == TaskStatus.RUNNING, Task.heartbeat_at < cutoff)
                )
            ).all()
            for task_id, worker, attempts, max_attempts, cancel in stale:
                if worker in excluded:
                    continue
                stamp = now()
                values: dict[str, Any]
                if cancel:
                    values = {
                        "status": TaskStatus.CANCELLED,
                        "finished_at": stamp,
                        "message": "cancelled",
                    }
                elif attempts < max_attempts:
                    values = {
                        "status": TaskStatus.QUEUED,
                        "message": f"requeued: its worker went silent (attempt {attempts})",
                    }
                else:
                    values = {
                        "status": TaskStatus.FAILED,
                        "finished_at": stamp,
                        "error": "interrupted: its worker stopped sending heartbeats",
                        "message": "interrupted",
                    }
                # Conditional: a heartbeat that lands meanwhile keeps the task its worker's.
                done = await uow.session.execute(
                    update(Task)
                    .where(
                        Task.id == task_id,
                        Task.status == TaskStatus.RUNNING,
                        Task.worker == worker,
                        Task.heartbeat_at < cutoff,
                    )
                    .values(worker=None, **values)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    changed.append(task_id)
                    if values["status"] != TaskStatus.QUEUED:
                        await record_end(uow.session, task_id, at=stamp)
            await uow.commit()
        return changed
