"""Workers on several machines (issue 10, point 2): ``ydc worker`` processes against one
PostgreSQL database and one shared data dir never run a task twice, and take over the task of a
worker that died once its heartbeat is older than ``YDC_TASK_HEARTBEAT_S``.

Two real ``ydc worker`` commands stand in for two machines; the tasks are real exports of a
small project of BMP noise (deflated in the zip, so each export takes a moment).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.domain.models import TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.services.tasks import start_export
from tests.conftest import encode, make_image
from tests.postgres import PostgresServer
from tests.tasks.conftest import build_project, wait_until

TASKS = 20
HEARTBEAT_S = 2.0
FINISHED = {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED}


@pytest.fixture
def database_backend() -> str:
    """These tests need PostgreSQL: SQLite cannot be shared between machines."""
    return "postgresql"


class Workers:
    """``ydc worker`` processes on the test's settings, killed at the end of the test."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = {
            **os.environ,
            **settings.as_env(),
            "YDC_TASK_HEARTBEAT_S": str(HEARTBEAT_S),
            "YDC_TASK_SLOTS": "1",
        }
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(Path(sys.executable).with_name("ydc")), "worker"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(settings, tmp_path)
    try:
        yield started
    finally:
        started.stop()


def run_by(process: subprocess.Popen[bytes], task: TaskInfo) -> bool:
    """Whether ``task`` was claimed by that ``ydc worker`` (worker ids start host:pid:)."""
    return (task.worker or "").startswith(f"{socket.gethostname()}:{process.pid}:")


async def test_two_workers_run_each_task_once_and_take_over_the_task_of_a_killed_one(
    settings: Settings, stores: Stores, workers: Workers, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    files = []
    for seed in range(3):
        path = images / f"noise-{seed}.bmp"
        path.write_bytes(encode(make_image(1024, 768, seed=seed), ".bmp"))
        files.append(path)
    await build_project(stores, "shared", files)
    queued = [await start_export(stores, "shared") for _ in range(TASKS)]
    ids = {task.id for task in queued}

    async def tasks() -> list[TaskInfo]:
        return [t for t in await stores.task.list(limit=100) if t.id in ids]

    doomed, survivor = workers.start(), workers.start()

    # Let both work a while, then kill one in the middle of a task (the row says running and
    # its export has not finished: the worker process is that task's only runner).
    def doomed_mid_task(found: list[TaskInfo]) -> bool:
        finished_by_doomed = [t for t in found if t.status in FINISHED and run_by(doomed, t)]
        return len(finished_by_doomed) >= 2 and any(
            t.status == TaskStatus.RUNNING and run_by(doomed, t) and t.progress < 1.0 for t in found
        )

    seen = await wait_until(
        tasks, doomed_mid_task, within=120, interval=0.02, what="the first worker mid-task"
    )
    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait()
    [interrupted] = [t for t in seen if t.status == TaskStatus.RUNNING and run_by(doomed, t)]
    assert interrupted.attempts == 1

    done = await wait_until(
        tasks,
        lambda found: all(t.status in FINISHED for t in found),
        within=120,
        interval=0.2,
        what="every task to finish",
    )

    assert len(done) == TASKS
    assert all(t.status == TaskStatus.SUCCEEDED for t in done), [t.error for t in done]
    taken_over = next(t for t in done if t.id == interrupted.id)
    # Picked up again, by the other worker, only once its heartbeat had gone stale.
    assert taken_over.attempts == 2
    assert run_by(survivor, taken_over)
    assert taken_over.started_at is not None
    assert taken_over.started_at >= interrupted.heartbeat_at + HEARTBEAT_S  # type: ignore[operator]
    assert time.monotonic() - killed_at >= HEARTBEAT_S
    # Every other task was claimed exactly once, and both workers ran some.
    assert all(t.attempts == 1 for t in done if t.id != interrupted.id)
    assert sum(run_by(doomed, t) for t in done) >= 2
    assert sum(run_by(survivor, t) for t in done) >= 2
    for task in done:
        assert task.result is not None and task.result["images"] == len(files)
        assert (settings.data_dir / task.result["path"]).is_file()
    assert survivor.poll() is None  # still serving


def test_processes_starting_at_once_on_an_empty_database_migrate_it_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.empty_database("ydc_started_at_once")
    env = {**os.environ, "YDC_DATA_DIR": str(tmp_path / "data"), "YDC_DATABASE_URL": url}
    ydc = str(Path(sys.executable).with_name("ydc"))
    starting = [
        subprocess.Popen(
            [ydc, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in starting]

    assert [process.returncode for process in starting] == [0, 0, 0], outputs
    assert all("database at head" in output for output in outputs)
