"""TaskStore contract: a durable queue whose tasks belong to the worker that claimed them."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.stores import Stores

STALE_AFTER = 0.05  # seconds; the tests sleep a little longer to make a heartbeat stale


async def make_stale() -> None:
    await asyncio.sleep(STALE_AFTER * 2)


# --- enqueue, get, list -------------------------------------------------------------------


async def test_enqueueing_a_task_queues_it_with_its_params(stores: Stores, project: str) -> None:
    info = await stores.task.enqueue("export", {"format": "zip"}, dataset=project, max_attempts=2)

    assert info.kind == "export"
    assert info.status == "queued"
    assert info.params == {"format": "zip"}
    assert info.dataset == project
    assert (info.attempts, info.max_attempts) == (0, 2)
    assert info.cancel_requested is False
    assert info.worker is None
    assert info.finished is False
    assert await stores.task.get(info.id) == info


async def test_a_task_needs_no_project(stores: Stores) -> None:
    info = await stores.task.enqueue("cleanup")

    assert info.dataset is None
    assert info.params == {}


async def test_enqueueing_for_an_unknown_project_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound) as caught:
        await stores.task.enqueue("export", dataset="nobody")
    assert isinstance(caught.value, FileNotFoundError)
    assert await stores.task.list() == []


async def test_enqueueing_with_no_attempts_raises_invalid(stores: Stores) -> None:
    with pytest.raises(Invalid):
        await stores.task.enqueue("export", max_attempts=0)
    assert await stores.task.list() == []


async def test_getting_an_unknown_task_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.task.get(12345)


async def test_listing_tasks_gives_the_newest_first_in_pages(stores: Stores) -> None:
    ids = [(await stores.task.enqueue("k", {"n": n})).id for n in range(5)]

    first = await stores.task.list(limit=2)
    rest = await stores.task.list(before_id=first[-1].id)

    assert [t.id for t in first] == ids[::-1][:2]
    assert [t.id for t in rest] == ids[::-1][2:]


async def test_listing_tasks_of_one_project(stores: Stores, project: str) -> None:
    mine = await stores.task.enqueue("export", dataset=project)
    await stores.task.enqueue("cleanup")

    assert [t.id for t in await stores.task.list(dataset=project)] == [mine.id]


# --- claim --------------------------------------------------------------------------------


async def test_claiming_takes_the_oldest_queued_task_and_counts_an_attempt(
    stores: Stores,
) -> None:
    first = await stores.task.enqueue("a")
    await stores.task.enqueue("b")

    claimed = await stores.task.claim("worker-1")

    assert claimed is not None
    assert claimed.id == first.id
    assert claimed.status == "running"
    assert claimed.worker == "worker-1"
    assert claimed.attempts == 1
    assert claimed.heartbeat_at is not None
    assert claimed.started_at is not None
    assert (await stores.task.get(first.id)).status == "running"


async def test_claiming_with_nothing_queued_returns_none(stores: Stores) -> None:
    assert await stores.task.claim("worker-1") is None


async def test_claiming_only_some_kinds_skips_the_others(stores: Stores) -> None:
    await stores.task.enqueue("train")
    export = await stores.task.enqueue("export")

    claimed = await stores.task.claim("w", kinds=["export"])

    assert claimed is not None and claimed.id == export.id
    assert await stores.task.claim("w", kinds=["export"]) is None


async def test_a_task_is_claimed_by_only_one_of_two_workers(stores: Stores) -> None:
    task = await stores.task.enqueue("a")

    first = await stores.task.claim("worker-1")
    second = await stores.task.claim("worker-2")

    assert first is not None and first.id == task.id
    assert second is None
    assert (await stores.task.get(task.id)).worker == "worker-1"


async def test_two_concurrent_claims_of_one_task_give_it_to_exactly_one(stores: Stores) -> None:
    task = await stores.task.enqueue("a")

    results = await asyncio.gather(stores.task.claim("worker-1"), stores.task.claim("worker-2"))

    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].id == task.id
    stored = await stores.task.get(task.id)
    assert (stored.worker, stored.attempts) == (winners[0].worker, 1)


async def test_many_concurrent_claims_never_share_a_task(stores: Stores) -> None:
    ids = {(await stores.task.enqueue("a")).id for _ in range(3)}

    results = await asyncio.gather(*(stores.task.claim(f"w{n}") for n in range(6)))

    claimed = [r.id for r in results if r is not None]
    assert sorted(claimed) == sorted(ids)


# --- heartbeat and finish -----------------------------------------------------------------


async def test_a_heartbeat_records_progress_and_says_no_cancel_was_asked(stores: Stores) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")

    cancel = await stores.task.heartbeat(task.id, "w", progress=0.25, message="a quarter")

    assert cancel is False
    info = await stores.task.get(task.id)
    assert info.progress == pytest.approx(0.25)
    assert info.message == "a quarter"


async def test_a_heartbeat_returns_true_once_a_cancel_is_requested(stores: Stores) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")

    asked = await stores.task.request_cancel(task.id)

    assert asked.status == "running"
    assert asked.cancel_requested is True
    assert await stores.task.heartbeat(task.id, "w") is True


async def test_a_heartbeat_from_the_wrong_worker_raises_conflict(stores: Stores) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")
    before = await stores.task.get(task.id)

    with pytest.raises(Conflict):
        await stores.task.heartbeat(task.id, "intruder", progress=0.9)

    assert await stores.task.get(task.id) == before


async def test_a_heartbeat_for_a_task_not_running_raises_conflict(stores: Stores) -> None:
    queued = await stores.task.enqueue("a")

    with pytest.raises(Conflict):
        await stores.task.heartbeat(queued.id, "w")

    assert (await stores.task.get(queued.id)).status == "queued"


async def test_finishing_a_task_records_its_result(stores: Stores) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")

    info = await stores.task.finish(task.id, "w", status="succeeded", result={"images": 3})

    assert info.status == "succeeded"
    assert info.finished is True
    assert info.result == {"images": 3}
    assert info.finished_at is not None
    assert await stores.task.get(task.id) == info


async def test_finishing_a_task_as_failed_records_the_error(stores: Stores) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")

    info = await stores.task.finish(task.id, "w", status="failed", error="disk full")

    assert (info.status, info.error) == ("failed", "disk full")


@pytest.mark.parametrize("status", ["running", "queued", "exploded"])
async def test_finishing_with_a_status_that_is_not_final_raises_invalid(
    stores: Stores, status: str
) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")
    before = await stores.task.get(task.id)

    with pytest.raises(Invalid):
        await stores.task.finish(task.id, "w", status=status)

    assert await stores.task.get(task.id) == before


async def test_finishing_by_the_wrong_worker_raises_conflict_and_changes_nothing(
    stores: Stores,
) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")
    before = await stores.task.get(task.id)

    with pytest.raises(Conflict):
        await stores.task.finish(task.id, "intruder", status="succeeded")

    assert await stores.task.get(task.id) == before


async def test_a_finished_task_can_be_neither_finished_again_nor_heartbeaten(
    stores: Stores,
) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")
    done = await stores.task.finish(task.id, "w", status="succeeded", result={"ok": True})

    with pytest.raises(Conflict):
        await stores.task.finish(task.id, "w", status="failed", error="late")
    with pytest.raises(Conflict):
        await stores.task.heartbeat(task.id, "w")

    assert await stores.task.get(task.id) == done


# --- cancel -------------------------------------------------------------------------------


async def test_cancelling_a_queued_task_cancels_it_at_once(stores: Stores) -> None:
    task = await stores.task.enqueue("a")

    info = await stores.task.request_cancel(task.id)

    assert info.status == "cancelled"
    assert info.finished is True
    assert await stores.task.claim("w") is None


async def test_cancelling_a_finished_task_leaves_it_as_it_is(stores: Stores) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")
    done = await stores.task.finish(task.id, "w", status="succeeded")

    info = await stores.task.request_cancel(task.id)

    assert info.status == "succeeded"
    assert (await stores.task.get(task.id)).status == "succeeded"
    assert info.result == done.result


async def test_cancelling_an_unknown_task_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.task.request_cancel(12345)


# --- requeue_stale ------------------------------------------------------------------------


async def test_requeue_stale_never_touches_a_fresh_heartbeat(stores: Stores) -> None:
    task = await stores.task.enqueue("a")
    await stores.task.claim("w")

    assert await stores.task.requeue_stale(60.0) == []

    info = await stores.task.get(task.id)
    assert (info.status, info.worker) == ("running", "w")
    assert await stores.task.heartbeat(task.id, "w") is False


async def test_a_stale_task_is_requeued_and_its_old_worker_loses_it(stores: Stores) -> None:
    task = await stores.task.enqueue("a", max_attempts=3)
    await stores.task.claim("w")
    await make_stale()

    assert await stores.task.requeue_stale(STALE_AFTER) == [task.id]

    info = await stores.task.get(task.id)
    assert info.status == "queued"
    assert info.finished is False
    with pytest.raises(Conflict):
        await stores.task.heartbeat(task.id, "w")
    with pytest.raises(Conflict):
        await stores.task.finish(task.id, "w", status="succeeded")
    again = await stores.task.claim("w2")
    assert again is not None
    assert (again.id, again.worker, again.attempts) == (task.id, "w2", 2)


async def test_only_the_stale_task_is_requeued(stores: Stores) -> None:
    stale = await stores.task.enqueue("a")
    fresh = await stores.task.enqueue("b")
    await stores.task.claim("w1")
    await make_stale()
    await stores.task.claim("w2")

    assert await stores.task.requeue_stale(STALE_AFTER) == [stale.id]

    assert (await stores.task.get(fresh.id)).status == "running"


async def test_a_stale_task_out_of_attempts_fails_as_interrupted(stores: Stores) -> None:
    task = await stores.task.enqueue("a", max_attempts=1)
    await stores.task.claim("w")
    await make_stale()

    assert await stores.task.requeue_stale(STALE_AFTER) == [task.id]

    info = await stores.task.get(task.id)
    assert info.status == "failed"
    assert info.finished is True
    assert "interrupted" in (info.error or "")
    assert await stores.task.claim("w2") is None


async def test_requeue_stale_leaves_queued_and_finished_tasks_alone(stores: Stores) -> None:
    queued = await stores.task.enqueue("a")
    done = await stores.task.enqueue("b")
    await stores.task.claim("w", kinds=["b"])
    await stores.task.finish(done.id, "w", status="succeeded")
    await make_stale()

    assert await stores.task.requeue_stale(0.0) == []

    assert (await stores.task.get(queued.id)).status == "queued"
    assert (await stores.task.get(done.id)).status == "succeeded"
