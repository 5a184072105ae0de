"""The machine's resources as ydc reads them, and the disk reserve: pure parsers and rules.

No I/O here: the text of ``/proc/stat``, ``/proc/meminfo``, ``/proc/<pid>/status`` and the CSV
``nvidia-smi`` prints, and the numbers of ``os.statvfs``, are handed in by a thin reading shell
(``app.services.system``), so every figure a page shows is unit-tested on recorded samples.

Sizes are bytes throughout; ``MB`` and ``GB`` in messages are powers of 1000, as the pages show
file sizes (``app.web.formatting.file_size``).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import YdcError

MB = 1000**2
GB = 1000**3
# The columns asked of nvidia-smi, in this order (``--query-gpu=...``).
NVIDIA_SMI_FIELDS = ("index", "name", "memory.used", "memory.total", "utilization.gpu")
MIB = 2**20  # nvidia-smi reports memory in MiB (with ``nounits``)
RESERVE_SETTING = "YDC_DISK_RESERVE_MB"


# --- CPU ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat``: jiffies spent busy and in all."""

    busy: int
    total: int


def parse_cpu_times(stat_text: str) -> CpuTimes:
    """The first (all-CPU) line of ``/proc/stat``. Idle time is ``idle`` + ``iowait``; ``guest``
    and ``guest_nice`` are already counted in ``user`` and ``nice``, so they are left out of
    the total. ``ValueError`` when the text has no ``cpu`` line."""
    for line in stat_text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [int(v) for v in parts[1:]]
            fields = (values + [0] * 8)[:8]  # user nice system idle iowait irq softirq steal
            total = sum(fields)
            idle = fields[3] + fields[4]
            return CpuTimes(busy=total - idle, total=total)
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def cpu_share(before: CpuTimes, after: CpuTimes) -> float | None:
    """The share (0..1) of all CPUs that was busy between two samples; ``None`` when no time
    passed between them (or the counters went back: a different machine's sample)."""
    total = after.total - before.total
    busy = after.busy - before.busy
    if total <= 0 or busy < 0:
        return None
    return min(1.0, max(0.0, busy / total))


def cpu_count_of(stat_text: str) -> int:
    """How many ``cpuN`` lines ``/proc/stat`` has (the CPUs the share is spread over)."""
    return sum(
        1
        for line in stat_text.splitlines()
        if line.startswith("cpu") and len(line) > 3 and line[3].isdigit()
    )


# --- memory ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """RAM: ``used`` is what is not available to new programs (MemTotal - MemAvailable)."""

    total: int
    available: int

    @property
    def used(self) -> int:
        return max(0, self.total - self.available)


def _kb_fields(text: str) -> dict[str, int]:
    """``Name:   123 kB`` lines as bytes (lines in other units, or none, as they are)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
        found[name.strip()] = int(parts[0]) * scale
    return found


def parse_meminfo(meminfo_text: str) -> Memory:
    """Total and available RAM from ``/proc/meminfo`` (kB there, bytes here). Kernels before
    3.14 have no MemAvailable: MemFree + Buffers + Cached stands in. ``ValueError`` without
    MemTotal."""
    fields = _kb_fields(meminfo_text)
    if "MemTotal" not in fields:
        raise ValueError("no MemTotal in /proc/meminfo")
    available = fields.get("MemAvailable")
    if available is None:
        available = sum(fields.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return Memory(total=fields["MemTotal"], available=min(available, fields["MemTotal"]))


def parse_process_memory(status_text: str) -> tuple[int | None, int | None]:
    """A process's resident memory now and at its peak (``VmRSS``, ``VmHWM`` of
    ``/proc/<pid>/status``), in bytes; ``None`` for what the text lacks (a kernel thread)."""
    fields = _kb_fields(status_text)
    return fields.get("VmRSS"), fields.get("VmHWM")


# --- disk --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disk:
    """The file system a folder lives on: ``free`` is what an unprivileged process may still
    write (``f_bavail``: the blocks kept for root do not count)."""

    path: str
    free: int
    total: int

    @property
    def used(self) -> int:
        return max(0, self.total - self.free)


def disk_of(path: str, *, f_bavail: int, f_blocks: int, f_frsize: int) -> Disk:
    """The figures of ``os.statvfs(path)``."""
    return Disk(path=path, free=f_bavail * f_frsize, total=f_blocks * f_frsize)


# --- GPUs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi reports it; ``None`` where it says ``[N/A]`` or
    ``[Not Supported]`` (memory of a MIG-partitioned or integrated GPU, utilisation of some
    boards)."""

    index: int
    name: str
    memory_used: int | None
    memory_total: int | None
    utilisation: float | None  # 0..1


def _number(raw: str) -> float | None:
    text = raw.strip()
    if not text or text.startswith("[") or text.upper() in {"N/A", "NA"}:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_nvidia_smi(csv_text: str) -> list[Gpu]:
    """The GPUs of ``nvidia-smi --query-gpu=index,name,memory.used,memory.total,
    utilization.gpu --format=csv,noheader,nounits`` (memory in MiB, utilisation in %). A line
    that does not have the five columns is skipped. A GPU's name may hold commas: the columns
    are taken from both ends."""
    gpus = []
    for line in csv_text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < len(NVIDIA_SMI_FIELDS):
            continue
        index_text, used, total, util = parts[0], parts[-3], parts[-2], parts[-1]
        name = ", ".join(parts[1:-3])
        if not index_text.isdigit():
            continue
        used_mib, total_mib, percent = _number(used), _number(total), _number(util)
        gpus.append(
            Gpu(
                index=int(index_text),
                name=name,
                memory_used=round(used_mib * MIB) if used_mib is not None else None,
                memory_total=round(total_mib * MIB) if total_mib is not None else None,
                utilisation=min(1.0, percent / 100) if percent is not None else None,
            )
        )
    return gpus


# --- the disk reserve ----------------------------------------------------------------------------


class InsufficientStorage(YdcError):
    """Writing this would leave less free disk than the reserve ydc keeps (507)."""

    status = 507


def megabytes(size: int) -> str:
    """``312 MB``, ``1.2 GB``, ``41 KB``: a size in a refusal."""
    if size >= 10 * GB:
        return f"{size / GB:.0f} GB"
    if size >= GB:
        return f"{size / GB:.1f} GB"
    if size >= MB or size == 0:
        return f"{size / MB:.0f} MB"
    return f"{size / 1000:.0f} KB" if size >= 1000 else f"{size} bytes"


def _refusal(disk: Disk, reserve: int, incoming: int, outcome: str, lead: str) -> str:
    needs = f" (this needs about {megabytes(incoming)} more)" if incoming > 0 else ""
    kept = (
        f"ydc keeps {megabytes(reserve)} free ({RESERVE_SETTING})"
        if reserve > 0
        else f"the reserve is off ({RESERVE_SETTING}=0)"
    )
    return (
        f"{lead}: {megabytes(disk.free)} free on {disk.path}{needs}, and {kept}. {outcome} "
        "Free some space, or lower the reserve."
    )


def reserve_refusal(
    disk: Disk, *, reserve: int, incoming: int = 0, outcome: str = "Nothing was stored."
) -> InsufficientStorage | None:
    """The refusal when writing ``incoming`` bytes onto ``disk`` would leave less free than
    ``reserve`` bytes (``None`` when it would not, or the reserve is 0: off). The message
    names the free space, the reserve and its setting; ``outcome`` says what did not happen."""
    if reserve <= 0 or disk.free - incoming >= reserve:
        return None
    return InsufficientStorage(_refusal(disk, reserve, incoming, outcome, "Not enough disk space"))


def disk_filled(disk: Disk, *, reserve: int, outcome: str) -> InsufficientStorage:
    """The error of a task whose disk filled up while it ran (``ENOSPC``), in the words of a
    refusal."""
    return InsufficientStorage(_refusal(disk, reserve, 0, outcome, "The disk is full"))


__all__ = [
    "GB",
    "MB",
    "NVIDIA_SMI_FIELDS",
    "CpuTimes",
    "Disk",
    "Gpu",
    "InsufficientStorage",
    "Memory",
    "cpu_count_of",
    "cpu_share",
    "disk_filled",
    "disk_of",
    "megabytes",
    "parse_cpu_times",
    "parse_meminfo",
    "parse_nvidia_smi",
    "parse_process_memory",
    "reserve_refusal",
]
