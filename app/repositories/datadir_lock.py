"""The data dir's lock (DESIGN.md "Start-up reconcile and recovery").

A server or worker holds it shared while it runs; ``ydc reconcile`` and ``ydc sync-from-disk``
need it exclusively, so they never move files under a process that is writing them. An
``flock`` on ``<data dir>/.ydc.lock``: the kernel drops it when the holder dies, so a killed
server never leaves the data dir locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from app.domain.errors import YdcError

LOCK_NAME = ".ydc.lock"


class DataDirBusy(YdcError):
    """Another ydc process holds the data dir in a way that excludes this one."""

    status = 409


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    def try_exclusive(self) -> bool:
        """Take the lock alone if no other process holds it; ``False`` otherwise."""
        try:
            fcntl.flock(self._open(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def exclusive(self) -> None:
        """Take the lock alone, or refuse (a server or worker is using the data dir)."""
        if not self.try_exclusive():
            self.release()
            raise DataDirBusy(
                f"A ydc server or worker is using {self.data_dir}. Stop it first, or run "
                "reconcile and sync from the Storage health page of the running server."
            )

    def shared(self) -> None:
        """Hold the lock alongside other servers and workers, or refuse while a reconcile or
        sync-from-disk from the command line has it alone. Also turns an exclusive hold into
        a shared one."""
        try:
            fcntl.flock(self._open(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise DataDirBusy(
                f"ydc reconcile or sync-from-disk is working on {self.data_dir}; start again "
                "when it has finished."
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
