"""NotificationStore contract: task ends in commit order, projects' webhooks, and deliveries
queued with the end and claimed by one sender at a time."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.stores import Stores

STALE_AFTER = 0.05


async def _ended(stores: Stores, project: str | None, status: str = "succeeded") -> int:
    task = await stores.task.enqueue("export", {}, dataset=project)
    claimed = await stores.task.claim("w1")
    assert claimed is not None and claimed.id == task.id
    await stores.task.finish(task.id, "w1", status=status, result={"images": 1})
    return task.id


# --- task ends -------------------------------------------------------------------------------


async def test_every_way_a_task_ends_is_numbered_once_in_order(
    stores: Stores, project: str
) -> None:
    assert await stores.notification.last_end() == 0
    finished = await _ended(stores, project)
    failed = await _ended(stores, None, "failed")
    queued = await stores.task.enqueue("export", {}, dataset=project)
    await stores.task.request_cancel(queued.id)  # cancelled before it started
    await stores.task.request_cancel(queued.id)  # a second cancel ends nothing
    silent = await stores.task.enqueue("train", {}, dataset=project, max_attempts=1)
    assert (await stores.task.claim("w2")) is not None
    await asyncio.sleep(STALE_AFTER * 2)
    assert await stores.task.requeue_stale(STALE_AFTER) == [silent.id]  # failed: interrupted
    running = await stores.task.enqueue("export", {}, dataset=project)
    assert (await stores.task.claim("w3")) is not None  # still running: not an end

    ended = await stores.notification.ended_after(0)

    assert [e.task.id for e in ended] == [finished, failed, queued.id, silent.id]
    assert [e.task.status for e in ended] == ["succeeded", "failed", "cancelled", "failed"]
    seqs = [e.seq for e in ended]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert ended[0].task.dataset == project and ended[1].task.dataset is None
    assert await stores.notification.last_end() == seqs[-1]
    assert running.id not in [e.task.id for e in ended]


async def test_ends_after_a_cursor_are_the_later_ones_only(stores: Stores, project: str) -> None:
    first = await _ended(stores, project)
    cursor = await stores.notification.last_end()
    second = await _ended(stores, project)
    third = await _ended(stores, project)

    after = await stores.notification.ended_after(cursor)
    assert [e.task.id for e in after] == [second, third]
    assert [e.task.id for e in await stores.notification.ended_after(cursor, limit=1)] == [second]
    assert await stores.notification.ended_after(after[-1].seq) == []
    assert first not in [e.task.id for e in after]
    assert await stores.notification.ended_after(2**63 - 1) == []


# --- webhook settings ------------------------------------------------------------------------


async def test_a_project_has_no_webhook_until_one_is_set(stores: Stores, project: str) -> None:
    hook = await stores.notification.webhook(project)
    assert (hook.project, hook.url, hook.configured) == (project, None, False)

    with pytest.raises(Invalid):
        await stores.notification.set_webhook(project, "http://a.example/h")  # no secret
    set_ = await stores.notification.set_webhook(project, "http://a.example/h", secret="whsec_1")
    assert (set_.url, set_.secret, set_.configured) == ("http://a.example/h", "whsec_1", True)

    moved = await stores.notification.set_webhook(project, "https://b.example/h")
    assert (moved.url, moved.secret) == ("https://b.example/h", "whsec_1")  # secret kept
    renewed = await stores.notification.set_webhook(project, moved.url or "", secret="whsec_2")
    assert renewed.secret == "whsec_2"
    assert await stores.notification.webhook(project) == renewed

    await stores.notification.remove_webhook(project)
    assert not (await stores.notification.webhook(project)).configured
    await stores.notification.remove_webhook(project)  # twice is fine


async def test_an_unknown_project_has_no_webhook_to_read_or_set(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.notification.webhook("nope")
    with pytest.raises(NotFound):
        await stores.notification.set_webhook("nope", "http://a.example/", secret="s")


# --- deliveries ------------------------------------------------------------------------------


async def test_an_end_queues_a_delivery_only_for_a_project_with_a_webhook(
    stores: Stores, project: str
) -> None:
    before = await _ended(stores, project)
    await stores.notification.set_webhook(project, "http://a.example/h", secret="whsec_1")
    after = await _ended(stores, project, "failed")
    await _ended(stores, None)

    found = await stores.notification.deliveries()
    assert [(d.task_id, d.event, d.state, d.attempts) for d in found] == [
        (after, "task.failed", "pending", 0)
    ]
    assert found[0].project == project and found[0].url == "http://a.example/h"
    assert found[0].task_kind == "export"
    assert await stores.notification.deliveries(task_ids=[before]) == []
    assert await stores.notification.deliveries(project=project) == found
    assert await stores.notification.delivery(found[0].id) == found[0]
    with pytest.raises(NotFound):
        await stores.notification.delivery(found[0].id + 100)


async def test_a_due_delivery_is_claimed_by_one_sender_until_its_lease_runs_out(
    stores: Stores, project: str
) -> None:
    await stores.notification.set_webhook(project, "http://a.example/h", secret="whsec_1")
    task_id = await _ended(stores, project)
    now = (await stores.notification.deliveries())[0].created_at + 1
    assert await stores.notification.due_deliveries(now=now)

    jobs = await stores.notification.claim_deliveries("s1", now=now, lease_s=30)
    assert [(j.task.id, j.url, j.secret, j.attempts, j.body) for j in jobs] == [
        (task_id, "http://a.example/h", "whsec_1", 0, None)
    ]
    assert jobs[0].task.status == "succeeded" and jobs[0].task.dataset == project
    assert jobs[0].event == "task.succeeded"
    assert await stores.notification.claim_deliveries("s2", now=now, lease_s=30) == []
    assert not await stores.notification.due_deliveries(now=now)
    assert (await stores.notification.delivery(jobs[0].id)).state == "sending"

    # s1 went silent: after its lease another sender takes it; s1's late record is refused.
    again = await stores.notification.claim_deliveries("s2", now=now + 31, lease_s=30)
    assert [j.id for j in again] == [jobs[0].id]
    late = await stores.notification.record_attempt(
        jobs[0].id, "s1", body=b"{}", delivered=True, status_code=200, error=None,
        next_attempt_at=None,
    )  # fmt: skip
    assert late is False


async def test_attempts_are_recorded_failed_ones_wait_and_the_last_gives_up(
    stores: Stores, project: str
) -> None:
    await stores.notification.set_webhook(project, "http://a.example/h", secret="whsec_1")
    await _ended(stores, project)
    now = (await stores.notification.deliveries())[0].created_at + 1
    [job] = await stores.notification.claim_deliveries("s1", now=now, lease_s=30)

    assert await stores.notification.record_attempt(
        job.id, "s1", body=b'{"a":1}', delivered=False, status_code=500,
        error="answered 500", next_attempt_at=now + 2,
    )  # fmt: skip
    waiting = await stores.notification.delivery(job.id)
    assert (waiting.state, waiting.attempts, waiting.last_status) == ("pending", 1, 500)
    assert (waiting.last_error, waiting.next_attempt_at) == ("answered 500", now + 2)
    assert waiting.failing
    assert await stores.notification.claim_deliveries("s1", now=now + 1, lease_s=30) == []

    [retry] = await stores.notification.claim_deliveries("s1", now=now + 2, lease_s=30)
    assert (retry.attempts, retry.body) == (1, b'{"a":1}')  # the same bytes again
    await stores.notification.record_attempt(
        job.id, "s1", body=b'{"a":1}', delivered=False, status_code=None,
        error="ConnectionRefusedError", next_attempt_at=None,
    )  # fmt: skip
    failed = await stores.notification.delivery(job.id)
    assert (failed.state, failed.attempts, failed.next_attempt_at) == ("failed", 2, None)
    assert not await stores.notification.due_deliveries(now=now + 10_000)

    retried = await stores.notification.retry_delivery(job.id)
    assert retried.state == "pending" and retried.next_attempt_at is not None
    [last] = await stores.notification.claim_deliveries(
        "s1", now=retried.next_attempt_at + 1, lease_s=30
    )
    assert await stores.notification.record_attempt(
        last.id, "s1", body=b'{"a":1}', delivered=True, status_code=204, error=None,
        next_attempt_at=None,
    )  # fmt: skip
    done = await stores.notification.delivery(job.id)
    assert (done.state, done.attempts, done.last_error, done.last_status) == (
        "delivered", 3, None, 204,
    )  # fmt: skip
    assert done.delivered_at is not None and not done.failing
    with pytest.raises(Conflict, match="delivered already"):
        await stores.notification.retry_delivery(job.id)


async def test_removing_the_webhook_fails_what_was_not_sent_and_retry_needs_one(
    stores: Stores, project: str
) -> None:
    await stores.notification.set_webhook(project, "http://a.example/h", secret="whsec_1")
    await _ended(stores, project)
    [pending] = await stores.notification.deliveries()

    await stores.notification.remove_webhook(project)

    gone = await stores.notification.delivery(pending.id)
    assert gone.state == "failed" and "removed" in (gone.last_error or "")
    with pytest.raises(Conflict, match="no webhook"):
        await stores.notification.retry_delivery(pending.id)
    with pytest.raises(NotFound):
        await stores.notification.retry_delivery(pending.id + 100)


async def test_a_claim_follows_the_webhook_to_its_new_url(stores: Stores, project: str) -> None:
    await stores.notification.set_webhook(project, "http://old.example/h", secret="whsec_1")
    await _ended(stores, project)
    await stores.notification.set_webhook(project, "http://new.example/h", secret="whsec_2")
    now = (await stores.notification.deliveries())[0].created_at + 1

    [job] = await stores.notification.claim_deliveries("s1", now=now, lease_s=30)

    assert (job.url, job.secret) == ("http://new.example/h", "whsec_2")
    assert (await stores.notification.delivery(job.id)).url == "http://new.example/h"
