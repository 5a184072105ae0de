"""What ending a task writes besides the task row, in the same transaction: its number in the
sequence of ends (the pages' notifications) and, when its project has a webhook, the delivery
that will POST it. Called by ``SqlTaskStore`` wherever a task becomes succeeded, failed or
cancelled, so no end is missed and none is notified twice."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Task, TaskEnd, Webhook, WebhookDelivery
from app.domain.webhooks import DeliveryState, event_name


async def record_end(session: AsyncSession, task_id: int, *, at: float) -> None:
    """Number the task's end and queue its webhook delivery (inside the caller's unit)."""
    found = (
        await session.execute(
            select(Task.status, Task.project_id, Webhook.url)
            .outerjoin(Webhook, Webhook.project_id == Task.project_id)
            .where(Task.id == task_id)
        )
    ).first()
    if found is None:
        return
    status, project_id, url = found
    if await session.scalar(select(TaskEnd.id).where(TaskEnd.task_id == task_id)) is not None:
        return  # already ended once (a task ends once; be safe against a second call)
    session.add(TaskEnd(task_id=task_id, ended_at=at))
    if url is not None and project_id is not None:
        session.add(
            WebhookDelivery(
                task_id=task_id,
                project_id=project_id,
                event=event_name(status),
                url=url,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=at,
                created_at=at,
            )
        )
    await session.flush()
