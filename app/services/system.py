"""The machine's resources and the disk reserve: the thin reading shell around
``app.domain.resources``.

``SystemMonitor`` reads CPU, RAM, the disk of the data dir and the GPUs for the system page and
the header's indicator. It is cheap enough to be polled by every open page: ``/proc`` files are
read in a thread, the CPU share is the difference to the previous sample (kept here), and
``nvidia-smi`` runs at most every few seconds with a short timeout (no binary: no GPU). torch is
never imported here: the server stays light.

``ensure_disk_room`` is the one check every writing entry point (uploads, imports, exports,
trainings) makes before it changes anything; ``disk_full_guard`` turns a disk that fills while
a task runs into the same refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from app.domain.resources import (
    NVIDIA_SMI_FIELDS,
    CpuTimes,
    Disk,
    Gpu,
    InsufficientStorage,
    Memory,
    cpu_count_of,
    cpu_share,
    disk_filled,
    disk_of,
    parse_cpu_times,
    parse_meminfo,
    parse_nvidia_smi,
    parse_process_memory,
    reserve_refusal,
)
from app.domain.stores import Stores

PROC = Path("/proc")
NVIDIA_SMI = "nvidia-smi"
NVIDIA_SMI_TIMEOUT_S = 2.0
GPU_CACHE_S = 5.0  # nvidia-smi takes 20-100 ms: not once per polling page
CPU_FIRST_GAP_S = 0.25  # the first reading has no earlier sample: take two this far apart
CPU_MIN_GAP_S = 0.5  # closer samples than this reuse the last share (two pages polling)


# --- the disk reserve ------------------------------------------------------------------------


def read_disk(path: Path) -> Disk:
    """The file system ``path`` lives on (``os.statvfs``)."""
    figures = os.statvfs(path)
    return disk_of(
        str(path),
        f_bavail=figures.f_bavail,
        f_blocks=figures.f_blocks,
        f_frsize=figures.f_frsize,
    )


def disk_refusal(
    data_dir: Path, reserve: int, *, incoming: int = 0, outcome: str = "Nothing was stored."
) -> InsufficientStorage | None:
    """The refusal ``ensure_disk_room`` raises, or ``None`` when there is room (blocking)."""
    if reserve <= 0:
        return None
    return reserve_refusal(read_disk(data_dir), reserve=reserve, incoming=incoming, outcome=outcome)


async def ensure_disk_room(
    stores: Stores, *, incoming: int = 0, outcome: str = "Nothing was stored."
) -> None:
    """Raise ``InsufficientStorage`` (507), naming the free space and the reserve, when writing
    ``incoming`` more bytes would leave less free than ``YDC_DISK_RESERVE_MB`` where the data
    dir lives. Called before anything is written or queued, so a refusal changes nothing."""
    if stores.disk_reserve <= 0:
        return
    refusal = await asyncio.to_thread(
        disk_refusal, stores.data_dir, stores.disk_reserve, incoming=incoming, outcome=outcome
    )
    if refusal is not None:
        raise refusal


def size_of(handle: IO[bytes]) -> int:
    """How many bytes a seekable upload holds (its position is left at the start)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    return size


@contextlib.contextmanager
def disk_full_guard(data_dir: Path, reserve: int, *, outcome: str) -> Iterator[None]:
    """Turn "No space left on device" raised inside into the reserve's refusal (the task then
    fails with the same words as a refused request, instead of an errno)."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise disk_filled(read_disk(data_dir), reserve=reserve, outcome=outcome) from error


# --- reading the machine ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessFigures:
    """One ydc process: its resident memory now and at its peak (bytes)."""

    pid: int
    role: str  # "server", or the task a worker runs ("task 12 (train)")
    rss: int | None
    peak_rss: int | None
    task_id: int | None = None


@dataclass(frozen=True)
class SystemReading:
    """What the system page and the header's indicator show, read at ``read_at``."""

    read_at: float
    cpu_share: float | None  # 0..1 of all CPUs; None when unreadable
    cpus: int
    memory: Memory | None
    disk: Disk | None
    gpus: list[Gpu] = field(default_factory=list)
    gpu_note: str | None = None  # why no GPU is shown (no nvidia-smi, it failed)
    processes: list[ProcessFigures] = field(default_factory=list)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def process_figures(pid: int, role: str, task_id: int | None = None) -> ProcessFigures | None:
    """A process's memory from ``/proc/<pid>/status``; ``None`` once it has gone."""
    text = _read_text(PROC / str(pid) / "status")
    if text is None:
        return None
    rss, peak = parse_process_memory(text)
    return ProcessFigures(pid=pid, role=role, rss=rss, peak_rss=peak, task_id=task_id)


def peak_memory_of_this_process() -> int:
    """This process's peak resident memory in bytes (``VmHWM``; ``getrusage``'s ``ru_maxrss``
    where /proc has none).

    Child processes are left out on purpose: a forked child's ``ru_maxrss`` counts the pages it
    shares with its parent (Ultralytics runs small commands, each a fork of a process holding
    torch), so ``RUSAGE_CHILDREN`` reported 850 MB for a training whose only worker was this
    process."""
    import resource

    text = _read_text(PROC / "self" / "status")
    _, peak = parse_process_memory(text) if text is not None else (None, None)
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return peak


class SystemMonitor:
    """Reads the machine for the system page, keeping the last CPU sample (for the share since
    then) and the last ``nvidia-smi`` answer (for ``GPU_CACHE_S``). One per server."""

    def __init__(self, data_dir: Path, *, nvidia_smi: str | None = NVIDIA_SMI) -> None:
        self.data_dir = data_dir
        self._nvidia_smi = nvidia_smi
        self._lock = threading.Lock()
        self._cpu_sample: tuple[float, CpuTimes] | None = None
        self._cpu_share: float | None = None
        self._gpus: tuple[float, list[Gpu], str | None] | None = None

    # CPU ----------------------------------------------------------------------------------

    def _cpu(self) -> tuple[float | None, int]:
        text = _read_text(PROC / "stat")
        if text is None:
            return None, os.cpu_count() or 1
        cpus = cpu_count_of(text) or os.cpu_count() or 1
        try:
            now = (time.monotonic(), parse_cpu_times(text))
        except ValueError:
            return None, cpus
        with self._lock:
            before = self._cpu_sample
            if before is not None and now[0] - before[0] < CPU_MIN_GAP_S:
                return self._cpu_share, cpus
        if before is None:
            time.sleep(CPU_FIRST_GAP_S)
            later = _read_text(PROC / "stat")
            if later is None:
                return None, cpus
            before, now = now, (time.monotonic(), parse_cpu_times(later))
        share = cpu_share(before[1], now[1])
        with self._lock:
            self._cpu_sample = now
            self._cpu_share = share
        return share, cpus

    # GPUs ---------------------------------------------------------------------------------

    def _query_gpus(self) -> tuple[list[Gpu], str | None]:
        binary = shutil.which(self._nvidia_smi) if self._nvidia_smi else None
        if binary is None:
            return [], "No NVIDIA GPU: nvidia-smi is not installed"
        try:
            done = subprocess.run(
                [
                    binary,
                    f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}",
                    "--format=csv,noheader,nounits",
                ],
                capture_output=True,
                text=True,
                timeout=NVIDIA_SMI_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [], f"nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT_S:.0f} s"
        except OSError as error:
            return [], f"nvidia-smi could not run: {error.strerror or error}"
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip().splitlines()
            return [], f"nvidia-smi failed: {said[0] if said else f'exit {done.returncode}'}"
        gpus = parse_nvidia_smi(done.stdout)
        return gpus, None if gpus else "nvidia-smi lists no GPU"

    def _gpu(self) -> tuple[list[Gpu], str | None]:
        now = time.monotonic()
        with self._lock:
            cached = self._gpus
        if cached is not None and now - cached[0] < GPU_CACHE_S:
            return cached[1], cached[2]
        gpus, note = self._query_gpus()
        with self._lock:
            self._gpus = (time.monotonic(), gpus, note)
        return gpus, note

    # all ----------------------------------------------------------------------------------

    def read(self, workers: dict[int, int] | None = None) -> SystemReading:
        """Read everything (blocking: call it in a thread). ``workers``: task id → pid of the
        worker processes this server runs, shown beside the server itself."""
        share, cpus = self._cpu()
        meminfo = _read_text(PROC / "meminfo")
        try:
            memory = parse_meminfo(meminfo) if meminfo is not None else None
        except ValueError:
            memory = None
        try:
            disk: Disk | None = read_disk(self.data_dir)
        except OSError:
            disk = None
        gpus, note = self._gpu()
        processes = [process_figures(os.getpid(), "server")]
        for task_id, pid in sorted((workers or {}).items()):
            processes.append(process_figures(pid, f"task {task_id}", task_id))
        return SystemReading(
            read_at=time.time(),
            cpu_share=share,
            cpus=cpus,
            memory=memory,
            disk=disk,
            gpus=gpus,
            gpu_note=note,
            processes=[p for p in processes if p is not None],
        )

    async def reading(self, workers: dict[int, int] | None = None) -> SystemReading:
        """``read`` in a thread."""
        return await asyncio.to_thread(self.read, workers)


__all__ = [
    "ProcessFigures",
    "SystemMonitor",
    "SystemReading",
    "disk_full_guard",
    "disk_refusal",
    "ensure_disk_room",
    "peak_memory_of_this_process",
    "process_figures",
    "read_disk",
    "size_of",
]
