"""A worker never outlives its server: killed with SIGKILL during a training, the server takes
its worker (torch busy in a thread) down with it within seconds, and the next server fails the
training "interrupted" once its heartbeat is stale: a training is never run again by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from app.config import Settings
from app.domain.models import TaskInfo, TaskStatus
from app.domain.stores import Stores
from app.services.training import start_training
from tests.conftest import TEST_DATA
from tests.crash.support import free_port
from tests.tasks.conftest import wait_until

START_TIMEOUT_S = 30.0


class ServerProcess:
    """``ydc serve`` with its task runner, in a subprocess of this test."""

    def __init__(self, data_dir: Path, log: Path, heartbeat_s: float) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("YDC_")}
        env.update(
            YDC_DATA_DIR=str(data_dir),
            YDC_PORT=str(self.port),
            YDC_RUN_TASKS="true",
            YDC_TASK_HEARTBEAT_S=str(heartbeat_s),
            YDC_LOG_LEVEL="WARNING",
        )
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve"], env=env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            code = self.process.poll()
            assert code is None, f"the server exited with {code}:\n{self.output()}"
            try:
                url = f"http://127.0.0.1:{self.port}/api/v1/csrf"
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{self.output()}"
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_bytes()[-4000:].decode(errors="replace")

    def workers(self) -> list[psutil.Process]:
        """The server's live worker subprocesses."""
        found = []
        for child in psutil.Process(self.process.pid).children():
            try:
                if "app.tasks.worker" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Servers started by the test, each stopped at the end if still up."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def gone(process: psutil.Process) -> bool:
    """Ended: no such process any more, or a zombie its new parent has not reaped yet."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_a_server_killed_during_a_training_takes_its_worker_down_and_the_next_fails_it(
    stores: Stores, settings: Settings, servers: list[ServerProcess], tmp_path: Path
) -> None:
    await stores.dataset.import_dataset("coco8", TEST_DATA / "coco8", create=True)
    # Far more epochs than the test lasts: only the kill can end it.
    task = await start_training(
        stores, "coco8", {"base": "yolo11n.yaml", "epochs": 500, "imgsz": 64, "batch": 2}
    )
    assert task.max_attempts == 1
    log = tmp_path / "server.log"
    first = ServerProcess(settings.data_dir, log, heartbeat_s=2.0)
    servers.append(first)

    async def training() -> tuple[TaskInfo, int]:
        return await stores.task.get(task.id), len(await stores.task.epochs(task.id))

    await wait_until(
        training,
        lambda seen: seen[0].status == TaskStatus.RUNNING and seen[1] >= 1,
        within=60,
        what="the first epoch",
    )
    workers = first.workers()
    assert len(workers) == 1, first.output()
    worker = workers[0]
    assert str(task.id) in worker.cmdline()
    assert f"--parent-pid={first.process.pid}" in worker.cmdline()

    first.process.kill()
    first.process.wait()
    killed_at = time.monotonic()
    while not gone(worker):
        assert time.monotonic() - killed_at < 5, "the worker outlived its server by 5 s"
        await asyncio.sleep(0.05)
    # It stopped mid-training: the task is still the dead worker's, unfinished.
    orphaned, epochs = await training()
    assert orphaned.status == TaskStatus.RUNNING, "the orphaned worker went on training"
    assert epochs < 500

    second = ServerProcess(settings.data_dir, log, heartbeat_s=1.0)
    servers.append(second)
    failed, _ = await wait_until(
        training,
        lambda seen: seen[0].status != TaskStatus.RUNNING,
        within=10,
        what="the silent training to be settled",
    )
    assert failed.status == TaskStatus.FAILED, failed
    assert failed.error is not None and "interrupted" in failed.error
    assert failed.attempts == 1  # never run again
    await asyncio.sleep(0.5)  # a few runner rounds: none of them claims it
    assert (await stores.task.get(task.id)).status == TaskStatus.FAILED
    assert second.workers() == []
    assert second.process.poll() is None
