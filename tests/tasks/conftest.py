"""Fixtures of the durable-task tests: big noise images, projects built from them, runners that
are always stopped, and a guard that fails a test leaving a worker process behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from app.config import Settings
from app.domain.models import Annotation
from app.domain.stores import Stores, TaskStore
from app.tasks.runner import TaskRunner
from tests.conftest import encode, make_image

T = TypeVar("T")

# BMP noise: 1024x768 is 2.4 MB a file. The export deflates BMPs (PNG and JPEG are stored as
# they are, which copies 50 of them in a fraction of a second), so exporting 50 takes seconds:
# long enough to watch progress, cancel it, or kill its worker halfway, without any sleep in
# the app.
BIG_WIDTH, BIG_HEIGHT = 1024, 768
BIG_IMAGES = 100
CLASSES = ["thing", "other"]


@pytest.fixture(scope="module")
def big_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """BIG_IMAGES distinct noise BMP files, written once per module."""
    folder = tmp_path_factory.mktemp("big-images")
    paths = []
    for seed in range(BIG_IMAGES):
        path = folder / f"noise-{seed:03d}.bmp"
        path.write_bytes(encode(make_image(BIG_WIDTH, BIG_HEIGHT, seed=1000 + seed), ".bmp"))
        paths.append(path)
    return paths


async def build_project(stores: Stores, name: str, files: list[Path]) -> list[str]:
    """A project holding ``files`` (every fifth in val), each labelled with one box."""
    await stores.dataset.create(name, CLASSES)
    names = []
    for index, path in enumerate(files):
        split = "val" if index % 5 == 4 else "train"
        info = await stores.image.save_file(name, split, path.name, path)
        box = Annotation(class_id=index % 2, x=0.5, y=0.5, width=0.25, height=0.25)
        await stores.label.save(name, split, info.filename, [box])
        names.append(info.filename)
    return names


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    within: float,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``probe`` every ``interval`` until ``done(value)``; fail with the last value."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within} s waiting for {what}; last: {value!r}")
        await asyncio.sleep(interval)


def process_gone(pid: int) -> bool:
    """Whether no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
async def start_runner() -> AsyncIterator[Callable[..., TaskRunner]]:
    """Make (and, with ``start=True``, start) a TaskRunner that is stopped after the test."""
    made: list[TaskRunner] = []

    def make(
        tasks: TaskStore, settings: Settings, *, start: bool = True, **kw: object
    ) -> TaskRunner:
        runner = TaskRunner(tasks, settings, **kw)  # type: ignore[arg-type]
        made.append(runner)
        if start:
            runner.start()
        return runner

    yield make
    for runner in made:
        await runner.stop()


def _worker_children() -> list[int]:
    """Pids of this process's children that run ``app.tasks.worker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"app.tasks.worker" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_worker_left_behind() -> Iterator[None]:
    """Fail a test that leaves a worker process running (and kill it, so others are not hit)."""
    yield
    left = _worker_children()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    assert not left, f"worker processes left behind: {left}"
