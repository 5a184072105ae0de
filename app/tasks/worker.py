"""The subprocess that runs one claimed task: ``python -m app.tasks.worker run TASK_ID WORKER``.

It reads the settings from ``YDC_*`` variables, keeps the task's heartbeat fresh, and ends the
task as succeeded, failed or cancelled. If this process is killed, the heartbeat stops and the
task is requeued once it is stale (or failed "interrupted" when it has no attempt left).

A worker never outlives the process that started it (the server's or ``ydc worker``'s runner,
which passes ``--parent-pid``): nobody would be left to watch it, and a training would go on for
an hour. On Linux the kernel sends it SIGTERM when that parent dies (``PR_SET_PDEATHSIG``); a
parent that died before that was set, or a system without it, is caught by comparing
``os.getppid()`` with the parent's pid, at start and then every second. SIGTERM (the runner's
cancel or shutdown, or the parent's death) stops the worker at once, its own children first; its
task is left running in the database for the runner or the heartbeat rule to settle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from app.config import Settings
from app.domain.errors import Cancelled, Conflict, YdcError
from app.domain.models import TaskStatus
from app.repositories import create_stores
from app.repositories.datadir_lock import DataDirLock
from app.tasks.context import TaskContext
from app.tasks.jobs import JOBS

log = logging.getLogger("ydc.worker")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ORPHAN_CHECK_S = 1.0
TERMINATED = 128 + signal.SIGTERM  # the exit status of a worker stopped by SIGTERM


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (its parent) does: the kernel's parent-death
    signal where there is one, and a thread that polls ``os.getppid()`` everywhere. Exits at
    once if the parent is already gone. Any process a job starts may call it too."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %s", ctypes.get_errno())
    # After the prctl: a parent that died before it was set has left this process adopted
    # (by init or a subreaper) without any signal.
    if os.getppid() != parent_pid:
        _stop_now(f"its parent {parent_pid} is gone")
    watchdog = threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="ydc-parent-watch", daemon=True
    )
    watchdog.start()


def _watch_parent(parent_pid: int) -> None:
    # Works while the main thread is busy in a long C call, where a Python signal handler
    # would wait for it.
    while True:
        time.sleep(ORPHAN_CHECK_S)
        if os.getppid() != parent_pid:
            _stop_now(f"its parent {parent_pid} is gone")


def _children() -> list[int]:
    """This process's own child processes (Linux; none found elsewhere)."""
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for thread in Path(f"/proc/{os.getpid()}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                pids.extend(int(p) for p in (thread / "children").read_text().split())
    return pids


def _stop_now(why: str) -> None:
    """End this worker at once: pass SIGTERM on to its children (a job's helper process), then
    exit without unwinding. Unwinding would wait for a job's thread (a training step) to end
    and would run a job's ``finally`` as if the task had ended (an import would delete the
    uploaded zip its retry needs)."""
    with contextlib.suppress(Exception):
        os.write(2, f"worker {os.getpid()} stopping: {why}\n".encode())
    for pid in _children():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    os._exit(TERMINATED)


async def run_task(settings: Settings, task_id: int, worker: str) -> int:
    # Held beside the server's: a command-line reconcile never moves files under this task.
    lock = DataDirLock(settings.data_dir, settings.database_url)
    lock.shared()
    stores = create_stores(settings)
    try:
        task = await stores.task.get(task_id)
        if task.status != TaskStatus.RUNNING or task.worker != worker:
            log.warning("task %s is not running for %s; nothing to do", task_id, worker)
            return 1
        job = JOBS.get(task.kind)
        async with TaskContext(
            task,
            worker,
            stores.task,
            settings.task_heartbeat_s,
            import_roots=settings.import_roots,
        ) as ctx:
            try:
                if job is None:
                    raise YdcError(f"ydc has no task kind {task.kind!r}.")
                result = await job(ctx, stores)
            except Cancelled:
                status, result, error = TaskStatus.CANCELLED, None, None
            except YdcError as exc:
                status, result, error = TaskStatus.FAILED, None, str(exc)
            except Exception as exc:
                log.exception("task %s failed", task_id)
                status, result, error = TaskStatus.FAILED, None, f"{type(exc).__name__}: {exc}"
            else:
                status, error = TaskStatus.SUCCEEDED, None
        try:
            await stores.task.finish(task_id, worker, status=status, result=result, error=error)
        except Conflict:
            log.warning("task %s was taken from this worker before it finished", task_id)
            return 1
        return 0
    finally:
        await stores.close()
        lock.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tasks.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one claimed task")
    run.add_argument("task_id", type=int)
    run.add_argument("worker")
    run.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="end when this process (the runner that started it) ends; default: the parent",
    )
    args = parser.parse_args(argv)
    # SIGTERM from the runner (cancel, shutdown) or from the kernel when the runner died.
    signal.signal(signal.SIGTERM, lambda *_: _stop_now("SIGTERM"))
    if args.parent_pid is not None:
        # Ctrl-C on ``ydc worker`` reaches its workers too: their runner stops them (SIGTERM),
        # rather than each unwinding on its own.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(args.parent_pid if args.parent_pid is not None else os.getppid())
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s worker %(message)s")
    return asyncio.run(run_task(settings, args.task_id, args.worker))


if __name__ == "__main__":
    sys.exit(main())
