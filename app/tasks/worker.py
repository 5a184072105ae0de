"""The subprocess that runs one claimed task: ``python -m app.tasks.worker run TASK_ID WORKER``.

It reads the settings from ``YDC_*`` variables, keeps the task's heartbeat fresh, and ends the
task as succeeded, failed or cancelled. If this process is killed, the heartbeat stops and the
task is requeued once it is stale.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from app.config import Settings
from app.domain.errors import Cancelled, Conflict, YdcError
from app.domain.models import TaskStatus
from app.repositories import create_stores
from app.repositories.datadir_lock import DataDirLock
from app.tasks.context import TaskContext
from app.tasks.jobs import JOBS

log = logging.getLogger("ydc.worker")


async def run_task(settings: Settings, task_id: int, worker: str) -> int:
    # Held beside the server's: a command-line reconcile never moves files under this task.
    lock = DataDirLock(settings.data_dir)
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
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s worker %(message)s")
    # SIGTERM from the runner (cancel, shutdown): stop at once; the runner records the outcome.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return asyncio.run(run_task(settings, args.task_id, args.worker))


if __name__ == "__main__":
    sys.exit(main())
