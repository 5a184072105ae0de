"""Acceptance tests of the durable tasks: exports (and rebalances) run in a worker subprocess,
report progress, can be cancelled, survive a killed worker, and are never stolen while their
heartbeat is fresh."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.domain.errors import Conflict
from app.domain.models import SPLITS, Annotation, TaskInfo, TaskStatus
from app.domain.splits import DEFAULT_RATIOS, draw_split
from app.domain.stores import Stores
from app.main import create_app
from app.repositories import create_stores
from app.services.tasks import start_export
from app.tasks.runner import TaskRunner
from tests.conftest import arm_csrf, encode, make_image
from tests.tasks.conftest import CLASSES, build_project, process_gone, wait_until

FINISHED = {"succeeded", "failed", "cancelled"}


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its in-process task runner on, and a client talking to it."""
    app = create_app(settings.model_copy(update={"run_tasks": True}))
    # Long enough for the runner to terminate its workers on the way out.
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await arm_csrf(client)
            yield app, client


async def get_task(client: httpx.AsyncClient, task_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def test_an_export_runs_in_a_worker_process_reports_progress_and_can_be_downloaded(
    settings: Settings, stores: Stores, big_images: list[Path]
) -> None:
    names = await build_project(stores, "big", big_images[:50])

    async with serving(settings) as (app, client):
        response = await client.post("/api/v1/projects/big/export")
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        runner: TaskRunner = app.state.runner

        progress_seen: list[float] = []
        worker_pids: set[int] = set()
        worker_cmdlines: list[str] = []
        deadline = time.monotonic() + 60
        while True:
            child = runner.child_of(task_id)
            if child is not None and child.pid not in worker_pids:
                worker_pids.add(child.pid)
                worker_cmdlines.append(cmdline(child.pid))
            task = await get_task(client, task_id)
            if task["status"] == "running":
                progress_seen.append(task["progress"])
            if task["status"] in FINISHED:
                break
            assert time.monotonic() < deadline, f"export still {task['status']} after 60 s"
            await asyncio.sleep(0.1)

        assert task["status"] == "succeeded", task
        assert task["progress"] == 1.0
        assert task["attempts"] == 1
        assert any(0.0 < p < 1.0 for p in progress_seen), progress_seen
        assert progress_seen == sorted(progress_seen), "progress went backwards"

        # One worker subprocess ran it: not this process, and it was a live worker for this task.
        assert len(worker_pids) == 1, worker_pids
        (pid,) = worker_pids
        assert pid != os.getpid()
        assert f"app.tasks.worker run {task_id} " in worker_cmdlines[0], worker_cmdlines
        info = await stores.task.get(task_id)
        assert info.worker is not None and info.worker.startswith(runner.name)

        assert task["result"]["images"] == 50
        assert task["result"]["labels"] == 50
        download = await client.get(f"/api/v1/tasks/{task_id}/download")
        assert download.status_code == 200, download.text
        assert download.headers["content-type"] == "application/zip"

    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        members = archive.namelist()
        assert "data.yaml" in members
        images = {Path(m).name for m in members if m.startswith("images/")}
        labels = [m for m in members if m.startswith("labels/") and m.endswith(".txt")]
        assert images == set(names)
        assert len(labels) == 50
        first = next(m for m in members if m.startswith("images/train/"))
        original = next(p for p in big_images[:50] if p.name == Path(first).name)
        assert archive.read(first) == original.read_bytes()


async def test_a_cancel_ends_the_export_and_leaves_no_worker_process(
    settings: Settings, stores: Stores, big_images: list[Path]
) -> None:
    await build_project(stores, "big", big_images[:50])

    async with serving(settings) as (app, client):
        runner: TaskRunner = app.state.runner
        task_id = (await client.post("/api/v1/projects/big/export")).json()["id"]
        running = await wait_until(
            lambda: get_task(client, task_id),
            lambda t: t["status"] == "running" and 0.0 < t["progress"] < 1.0,
            within=30,
            interval=0.05,
            what="the export to be running with progress",
        )
        pid = runner.child_of(task_id).pid  # type: ignore[union-attr]
        assert not process_gone(pid)

        response = await client.post(f"/api/v1/tasks/{task_id}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["cancel_requested"] is True

        cancelled_by = time.monotonic() + 10
        task = await wait_until(
            lambda: get_task(client, task_id),
            lambda t: t["status"] in FINISHED,
            within=10,
            interval=0.1,
            what="the cancelled export to end",
        )
        assert task["status"] == "cancelled", task
        assert task["progress"] < 1.0
        assert task["progress"] >= running["progress"]

        async def children() -> dict[str, Any]:
            return dict(runner.children)

        await wait_until(
            children,
            lambda c: not c,
            within=max(0.5, cancelled_by - time.monotonic()),
            what="the runner to reap the worker",
        )
        assert process_gone(pid), f"worker {pid} still exists: {cmdline(pid)!r}"
        assert not list((settings.data_dir / "exports").glob(f"task-{task_id}/*.zip"))
        download = await client.get(f"/api/v1/tasks/{task_id}/download")
        assert download.status_code == 409


async def test_a_rebalance_runs_in_a_worker_process_and_moves_images_with_their_labels(
    settings: Settings, stores: Stores
) -> None:
    await stores.dataset.create("mixed", CLASSES)
    drawn: dict[str, str] = {}
    for seed in range(30):
        data = encode(make_image(32, 24, seed=500 + seed), ".png")
        info = await stores.image.save_file("mixed", "test", f"i{seed}.png", io.BytesIO(data))
        drawn[info.filename] = draw_split(info.sha256, DEFAULT_RATIOS)
    boxed = next(name for name, split in drawn.items() if split != "test")
    await stores.label.save("mixed", "test", boxed, [Annotation(1, 0.5, 0.5, 0.25, 0.25)])
    pinned = next(name for name, split in drawn.items() if split != "test" and name != boxed)
    await stores.image.move("mixed", pinned, "test", "test")  # pinned where it is

    async with serving(settings) as (app, client):
        response = await client.post("/api/v1/projects/mixed/rebalance")
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        worker_pids: set[int] = set()

        async def follow() -> dict[str, Any]:
            child = app.state.runner.child_of(task_id)
            if child is not None:
                worker_pids.add(child.pid)
            return await get_task(client, task_id)

        task = await wait_until(
            follow, lambda t: t["status"] in FINISHED, within=60, what="the rebalance to end"
        )

    assert task["status"] == "succeeded", task
    assert task["progress"] == 1.0
    assert len(worker_pids) == 1 and os.getpid() not in worker_pids
    after = {i.filename: i.split for i in await stores.image.list("mixed")}
    assert task["result"]["num_images"] == {s: list(after.values()).count(s) for s in SPLITS}
    assert after == {**drawn, pinned: "test"}
    labels = settings.data_dir / "projects" / "mixed" / "labels"
    assert {p.relative_to(labels).as_posix() for p in labels.rglob("*.txt")} == {
        f"{drawn[boxed]}/{Path(boxed).stem}.txt"
    }


async def test_a_task_whose_worker_is_killed_is_requeued_after_the_heartbeat_timeout_and_finishes(
    settings: Settings,
    stores: Stores,
    big_images: list[Path],
    start_runner: Callable[..., TaskRunner],
) -> None:
    await build_project(stores, "big", big_images[:25])
    runner = start_runner(stores.task, settings, poll_s=0.1)
    task = await start_export(stores, "big")

    first = await wait_until(
        lambda: stores.task.get(task.id),
        lambda t: (
            t.status == TaskStatus.RUNNING
            and t.progress > 0.0
            and runner.child_of(task.id) is not None
        ),
        within=30,
        what="the export to be running in a worker",
    )
    assert first.progress < 1.0 and first.attempts == 1
    child = runner.child_of(task.id)
    assert child is not None
    assert child.pid != os.getpid()
    os.kill(child.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    # Not before the heartbeat timeout (2 s): the task still belongs to the dead worker.
    await asyncio.sleep(1.0)
    silent = await stores.task.get(task.id)
    assert silent.status == TaskStatus.RUNNING
    assert silent.attempts == 1
    assert silent.worker == first.worker

    async def child_gone() -> bool:
        return process_gone(child.pid)

    await wait_until(
        child_gone,
        bool,
        within=5,
        what="the runner to reap the killed worker",
    )

    second = await wait_until(
        lambda: stores.task.get(task.id),
        lambda t: t.attempts >= 2,
        within=10,
        what="the task to be requeued and claimed again",
    )
    requeued_after = time.monotonic() - killed_at
    assert requeued_after >= 1.0
    assert second.attempts == 2
    assert second.worker is not None and second.worker != first.worker
    assert second.worker.startswith(runner.name)

    done = await wait_until(
        lambda: stores.task.get(task.id),
        lambda t: t.status in FINISHED,
        within=30,
        what="the second attempt to finish",
    )
    assert done.status == TaskStatus.SUCCEEDED, done
    assert done.attempts == 2
    assert done.result is not None and done.result["images"] == 25
    assert (stores.data_dir / done.result["path"]).is_file()


async def test_a_task_with_a_fresh_heartbeat_is_never_taken_by_a_second_runner(
    settings: Settings,
    stores: Stores,
    big_images: list[Path],
    start_runner: Callable[..., TaskRunner],
) -> None:
    await build_project(stores, "big", big_images)
    runner_a = start_runner(stores.task, settings, poll_s=0.1)
    task = await start_export(stores, "big")
    claimed = await wait_until(
        lambda: stores.task.get(task.id),
        lambda t: t.status == TaskStatus.RUNNING,
        within=10,
        what="runner A to claim the export",
    )
    assert claimed.worker is not None and claimed.worker.startswith(runner_a.name)

    stores_b = create_stores(settings)
    try:
        runner_b = start_runner(stores_b.task, settings, start=False, poll_s=0.1)
        assert runner_b.name != runner_a.name
        # B ticks for longer than the heartbeat timeout while A's worker keeps the task alive.
        window_end = time.monotonic() + 1.75 * settings.task_heartbeat_s
        ticks = 0
        while time.monotonic() < window_end:
            await runner_b.tick()
            ticks += 1
            seen = await stores_b.task.get(task.id)
            assert seen.status == TaskStatus.RUNNING, seen
            assert seen.worker == claimed.worker
            assert seen.attempts == 1
            assert not runner_b.children
            await asyncio.sleep(0.1)
        assert ticks >= 10
    finally:
        await stores_b.close()

    done = await wait_until(
        lambda: stores.task.get(task.id),
        lambda t: t.status in FINISHED,
        within=60,
        what="A's export to finish",
    )
    assert done.status == TaskStatus.SUCCEEDED, done
    assert done.attempts == 1
    assert done.worker == claimed.worker
    assert done.result is not None and done.result["images"] == len(big_images)
    assert not runner_b.children


# --- the heartbeat rule on the store ---------------------------------------------------------


async def claimed_task(stores: Stores, *, max_attempts: int) -> TaskInfo:
    await stores.task.enqueue("export", {}, max_attempts=max_attempts)
    task = await stores.task.claim("worker-1")
    assert task is not None and task.status == TaskStatus.RUNNING
    return task


async def test_requeue_stale_fails_a_silent_task_out_of_attempts_as_interrupted(
    stores: Stores,
) -> None:
    task = await claimed_task(stores, max_attempts=1)
    await asyncio.sleep(0.1)

    assert await stores.task.requeue_stale(0.05) == [task.id]

    failed = await stores.task.get(task.id)
    assert failed.status == TaskStatus.FAILED
    assert failed.error is not None and "interrupted" in failed.error
    assert failed.finished_at is not None
    assert failed.attempts == 1
    assert await stores.task.claim("worker-2") is None
    with pytest.raises(Conflict):
        await stores.task.finish(task.id, "worker-1", status="succeeded")
    assert (await stores.task.get(task.id)).status == TaskStatus.FAILED


async def test_requeue_stale_requeues_a_silent_task_while_attempts_remain(stores: Stores) -> None:
    task = await claimed_task(stores, max_attempts=2)
    await asyncio.sleep(0.1)

    assert await stores.task.requeue_stale(0.05) == [task.id]

    requeued = await stores.task.get(task.id)
    assert requeued.status == TaskStatus.QUEUED
    again = await stores.task.claim("worker-2")
    assert again is not None and again.id == task.id
    assert again.attempts == 2 and again.worker == "worker-2"
    with pytest.raises(Conflict):
        await stores.task.heartbeat(task.id, "worker-1", progress=0.5)
    assert (await stores.task.get(task.id)).progress == 0.0


async def test_requeue_stale_never_touches_a_task_with_a_fresh_heartbeat(stores: Stores) -> None:
    task = await claimed_task(stores, max_attempts=1)
    await asyncio.sleep(0.3)
    await stores.task.heartbeat(task.id, "worker-1", progress=0.25)

    assert await stores.task.requeue_stale(0.2) == []

    fresh = await stores.task.get(task.id)
    assert fresh.status == TaskStatus.RUNNING
    assert fresh.worker == "worker-1"
    assert fresh.progress == 0.25


async def test_a_task_of_an_unknown_kind_fails_with_a_readable_error(
    settings: Settings, stores: Stores, start_runner: Callable[..., TaskRunner]
) -> None:
    task = await stores.task.enqueue("nope", {})
    start_runner(stores.task, settings, poll_s=0.1)

    done = await wait_until(
        lambda: stores.task.get(task.id),
        lambda t: t.status in FINISHED,
        within=30,
        what="the unknown task to end",
    )
    assert done.status == TaskStatus.FAILED
    assert done.attempts == 1
    assert done.error is not None
    assert "nope" in done.error and "kind" in done.error
    assert "Traceback" not in done.error and "\n" not in done.error
