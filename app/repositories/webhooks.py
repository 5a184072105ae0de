"""``NotificationStore`` on SQLAlchemy: task ends in commit order, projects' webhooks, and the
``webhook_delivery`` table that senders claim like the task runner claims tasks (``BEGIN
IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and a lease: a delivery whose
sender went silent past it is due again). Every write after a claim is conditional on the claim,
so a sender whose lease ran out cannot overwrite its successor's result."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import and_, or_, select, update

from app.db.models import Project, Task, TaskEnd, Webhook, WebhookDelivery
from app.db.uow import Database
from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.webhooks import (
    Delivery,
    DeliveryJob,
    DeliveryState,
    NotificationStore,
    ProjectWebhook,
    TaskEnded,
)
from app.repositories.common import id_window, now, project_by_name
from app.repositories.tasks import SqlTaskStore

REMOVED = "the project's webhook was removed"


def _due(at: float) -> Any:
    return or_(
        and_(
            WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.next_attempt_at <= at,
        ),
        and_(
            WebhookDelivery.state == DeliveryState.SENDING,
            WebhookDelivery.claimed_until < at,
        ),
    )


def _delivery(row: WebhookDelivery, project: str | None, kind: str | None) -> Delivery:
    return Delivery(
        id=row.id,
        task_id=row.task_id,
        project=project,
        event=row.event,
        url=row.url,
        state=row.state,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        task_kind=kind,
    )


class SqlNotificationStore(NotificationStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- task ends -----------------------------------------------------------------------------

    async def last_end(self) -> int:
        async with self._db.reader() as session:
            found = await session.scalar(select(TaskEnd.id).order_by(TaskEnd.id.desc()).limit(1))
        return int(found or 0)

    async def ended_after(self, seq: int, *, limit: int = 20) -> builtins.list[TaskEnded]:
        async with self._db.reader() as session:
            rows = (
                await session.execute(
                    select(TaskEnd.id, Task, Project.name)
                    .join(Task, Task.id == TaskEnd.task_id)
                    .outerjoin(Project, Task.project_id == Project.id)
                    .where(*id_window(session, TaskEnd.id, after_id=seq, before_id=None))
                    .order_by(TaskEnd.id)
                    .limit(max(1, min(limit, 100)))
                )
            ).all()
        return [TaskEnded(seq, SqlTaskStore._info(task, name)) for seq, task, name in rows]

    # --- a project's webhook -------------------------------------------------------------------

    async def webhook(self, project: str) -> ProjectWebhook:
        async with self._db.reader() as session:
            found = await project_by_name(session, project)
            row = await session.scalar(select(Webhook).where(Webhook.project_id == found.id))
        if row is None:
            return ProjectWebhook(project=found.name)
        return ProjectWebhook(found.name, row.url, row.secret, row.updated_at)

    async def set_webhook(
        self, project: str, url: str, *, secret: str | None = None
    ) -> ProjectWebhook:
        async with self._db.unit() as uow:
            found = await project_by_name(uow.session, project)
            row = await uow.session.scalar(select(Webhook).where(Webhook.project_id == found.id))
            stamp = now()
            if row is None:
                if secret is None:
                    raise Invalid("A new webhook needs a secret.")
                row = Webhook(
                    project_id=found.id, url=url, secret=secret, created_at=stamp, updated_at=stamp
                )
                uow.session.add(row)
            else:
                row.url, row.updated_at = url, stamp
                if secret is not None:
                    row.secret = secret
            await uow.commit()
            return ProjectWebhook(found.name, row.url, row.secret, row.updated_at)

    async def remove_webhook(self, project: str) -> None:
        async with self._db.unit() as uow:
            found = await project_by_name(uow.session, project)
            row = await uow.session.scalar(select(Webhook).where(Webhook.project_id == found.id))
            if row is None:
                return
            await uow.session.delete(row)
            await uow.session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.project_id == found.id,
                    WebhookDelivery.state == DeliveryState.PENDING,
                )
                .values(state=DeliveryState.FAILED, next_attempt_at=None, last_error=REMOVED)
                .execution_options(synchronize_session=False)
            )
            await uow.commit()

    # --- deliveries ----------------------------------------------------------------------------

    @staticmethod
    def _select():  # type: ignore[no-untyped-def]
        return (
            select(WebhookDelivery, Project.name, Task.kind)
            .outerjoin(Project, WebhookDelivery.project_id == Project.id)
            .outerjoin(Task, WebhookDelivery.task_id == Task.id)
        )

    async def deliveries(
        self,
        *,
        project: str | None = None,
        task_ids: builtins.list[int] | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> builtins.list[Delivery]:
        async with self._db.reader() as session:
            query = self._select().order_by(WebhookDelivery.id.desc()).limit(limit)
            if project is not None:
                found = await project_by_name(session, project)
                query = query.where(WebhookDelivery.project_id == found.id)
            if task_ids is not None:
                if not task_ids:
                    return []
                query = query.where(WebhookDelivery.task_id.in_(task_ids))
            query = query.where(
                *id_window(session, WebhookDelivery.id, after_id=None, before_id=before_id)
            )
            rows = (await session.execute(query)).all()
        return [_delivery(row, name, kind) for row, name, kind in rows]

    async def delivery(self, delivery_id: int) -> Delivery:
        async with self._db.reader() as session:
            found = (
                await session.execute(self._select().where(WebhookDelivery.id == delivery_id))
            ).first()
        if found is None:
            raise NotFound(f"There is no webhook delivery {delivery_id}.")
        return _delivery(*found)

    async def due_deliveries(self, *, now: float) -> bool:
        async with self._db.reader() as session:
            found = await session.scalar(select(WebhookDelivery.id).where(_due(now)).limit(1))
        return found is not None

    async def claim_deliveries(
        self, sender: str, *, now: float, lease_s: float, limit: int = 10
    ) -> builtins.list[DeliveryJob]:
        jobs: builtins.list[DeliveryJob] = []
        async with self._db.unit() as uow:
            session = uow.session
            ids = (
                await session.scalars(
                    select(WebhookDelivery.id)
                    .where(_due(now))
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not ids:
                return []
            rows = (
                await session.execute(
                    select(WebhookDelivery, Webhook.url, Webhook.secret, Task, Project.name)
                    .join(Task, Task.id == WebhookDelivery.task_id)
                    .outerjoin(Project, Project.id == WebhookDelivery.project_id)
                    .outerjoin(Webhook, Webhook.project_id == WebhookDelivery.project_id)
                    .where(WebhookDelivery.id.in_(ids))
                )
            ).all()
            for delivery, url, secret, task, project in rows:
                if url is None or secret is None:
                    delivery.state, delivery.next_attempt_at = DeliveryState.FAILED, None
                    delivery.claimed_by = delivery.claimed_until = None
                    delivery.last_error = REMOVED
                    continue
                # Retries go where the webhook points now (an admin may have fixed the URL).
                delivery.url = url
                delivery.state = DeliveryState.SENDING
                delivery.claimed_by, delivery.claimed_until = sender, now + lease_s
                jobs.append(
                    DeliveryJob(
                        id=delivery.id,
                        url=url,
                        secret=secret,
                        attempts=delivery.attempts,
                        event=delivery.event,
                        task=SqlTaskStore._info(task, project),
                        body=delivery.body.encode() if delivery.body is not None else None,
                    )
                )
            await uow.commit()
        return sorted(jobs, key=lambda job: job.id)

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
        stamp = now()
        values: dict[str, Any] = {
            "attempts": WebhookDelivery.attempts + 1,
            "body": body.decode(),
            "last_attempt_at": stamp,
            "last_status": status_code,
            "last_error": None if delivered else (error or "failed"),
            "claimed_by": None,
            "claimed_until": None,
        }
        if delivered:
            values.update(state=DeliveryState.DELIVERED, delivered_at=stamp, next_attempt_at=None)
        elif next_attempt_at is not None:
            values.update(state=DeliveryState.PENDING, next_attempt_at=next_attempt_at)
        else:
            values.update(state=DeliveryState.FAILED, next_attempt_at=None)
        async with self._db.unit() as uow:
            done = await uow.session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.claimed_by == sender,
                    WebhookDelivery.state == DeliveryState.SENDING,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await uow.commit()
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    async def retry_delivery(self, delivery_id: int) -> Delivery:
        async with self._db.unit() as uow:
            row = await uow.session.get(WebhookDelivery, delivery_id)
            if row is None:
                raise NotFound(f"There is no webhook delivery {delivery_id}.")
            if row.state == DeliveryState.DELIVERED:
                raise Conflict(f"Webhook delivery {delivery_id} was delivered already.")
            if row.state == DeliveryState.SENDING:
                raise Conflict(f"Webhook delivery {delivery_id} is being sent right now.")
            hook = await uow.session.scalar(
                select(Webhook.id).where(Webhook.project_id == row.project_id)
            )
            if hook is None:
                raise Conflict(
                    "The project has no webhook any more: set one on the project's page first."
                )
            row.state, row.next_attempt_at = DeliveryState.PENDING, now()
            await uow.commit()
        return await self.delivery(delivery_id)
