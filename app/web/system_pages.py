"""The machine's resources: the system page, the header's indicator (a fragment every page polls
every 10 s) and their JSON twin ``GET /api/v1/system``.

What the figures mean: CPU is the share of all CPUs busy since the previous reading (of any
page), RAM used is MemTotal - MemAvailable, disk free is what ``os.statvfs`` says an ordinary
process may still write where the data dir lives, GPUs come from ``nvidia-smi`` (never from
torch: the server does not load it). ``DISK_FULL`` is the OpenAPI entry of the 507 every
writing route answers when the disk reserve would be broken.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from app.domain.errors import NotFound
from app.domain.models import TaskInfo
from app.domain.resources import RESERVE_SETTING
from app.domain.stores import Stores
from app.services.system import SystemMonitor, SystemReading
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.errors import ErrorOut
from app.web.render import render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["system"], dependencies=[Depends(require_csrf)])

PAGE = "pages/system.html"
POLL_S = 10  # the page and the header's indicator read again this often

DISK_FULL: dict[int | str, dict[str, Any]] = {
    507: {
        "model": ErrorOut,
        "description": "Insufficient Storage: storing this would leave less free disk where the "
        f"data dir lives than ydc keeps free ({RESERVE_SETTING}); nothing was changed. The "
        "detail names the free space and the reserve.",
    }
}


# --- JSON shapes -----------------------------------------------------------------------------


class CpuOut(BaseModel):
    share: float | None = Field(
        description="Share (0..1) of all CPUs busy since the previous reading; null if unknown."
    )
    cpus: int = Field(description="How many CPUs the share is spread over.")


class MemoryOut(BaseModel):
    total_bytes: int
    available_bytes: int = Field(description="MemAvailable: what new programs may still use.")
    used_bytes: int = Field(description="MemTotal - MemAvailable.")


class DiskOut(BaseModel):
    path: str = Field(description="The data dir, whose file system this is.")
    free_bytes: int = Field(description="What an ordinary process may still write (f_bavail).")
    total_bytes: int
    reserve_bytes: int = Field(description=f"What ydc keeps free ({RESERVE_SETTING}); 0: off.")


class GpuOut(BaseModel):
    index: int
    name: str
    memory_used_bytes: int | None = Field(description="null where nvidia-smi says [N/A].")
    memory_total_bytes: int | None
    utilisation: float | None = Field(description="0..1; null where nvidia-smi says [N/A].")


class ProcessOut(BaseModel):
    pid: int
    role: str = Field(description="'server', or the task a worker process runs.")
    task_id: int | None
    rss_bytes: int | None = Field(description="Resident memory now (VmRSS).")
    peak_rss_bytes: int | None = Field(description="Resident memory at its peak (VmHWM).")


class SystemOut(BaseModel):
    read_at: float = Field(description="When it was read (Unix time).")
    cpu: CpuOut
    memory: MemoryOut | None
    disk: DiskOut | None
    gpus: list[GpuOut]
    gpu_note: str | None = Field(description="Why no GPU is listed, when none is.")
    processes: list[ProcessOut] = Field(
        description="This server and the worker processes of the tasks it runs."
    )

    @classmethod
    def of(cls, reading: SystemReading, reserve: int) -> SystemOut:
        return cls(
            read_at=reading.read_at,
            cpu=CpuOut(share=reading.cpu_share, cpus=reading.cpus),
            memory=MemoryOut(
                total_bytes=reading.memory.total,
                available_bytes=reading.memory.available,
                used_bytes=reading.memory.used,
            )
            if reading.memory
            else None,
            disk=DiskOut(
                path=reading.disk.path,
                free_bytes=reading.disk.free,
                total_bytes=reading.disk.total,
                reserve_bytes=reserve,
            )
            if reading.disk
            else None,
            gpus=[
                GpuOut(
                    index=g.index,
                    name=g.name,
                    memory_used_bytes=g.memory_used,
                    memory_total_bytes=g.memory_total,
                    utilisation=g.utilisation,
                )
                for g in reading.gpus
            ],
            gpu_note=reading.gpu_note,
            processes=[
                ProcessOut(
                    pid=p.pid,
                    role=p.role,
                    task_id=p.task_id,
                    rss_bytes=p.rss,
                    peak_rss_bytes=p.peak_rss,
                )
                for p in reading.processes
            ],
        )


# --- reading ---------------------------------------------------------------------------------


def monitor_of(request: Request) -> SystemMonitor:
    """The server's monitor (built by the composition root; made here for an app without)."""
    monitor = getattr(request.app.state, "system_monitor", None)
    if monitor is None:
        monitor = SystemMonitor(request.app.state.settings.data_dir)
        request.app.state.system_monitor = monitor
    return monitor  # type: ignore[no-any-return]


def _workers(request: Request) -> dict[int, int]:
    """Task id → pid of the worker processes this server's runner has running."""
    runner = getattr(request.app.state, "runner", None)
    children = getattr(runner, "children", None) or {}
    return {child.task_id: child.pid for child in list(children.values())}


async def _reading(request: Request) -> SystemReading:
    return await monitor_of(request).reading(_workers(request))


async def _tasks(stores: Stores, reading: SystemReading) -> dict[int, TaskInfo]:
    found = {}
    for process in reading.processes:
        if process.task_id is not None:
            try:
                found[process.task_id] = await stores.task.get(process.task_id)
            except NotFound:
                continue
    return found


def _context(request: Request, reading: SystemReading) -> dict[str, Any]:
    reserve = request.app.state.stores.disk_reserve
    disk = reading.disk
    return {
        "nav": "system",
        "reading": reading,
        "reserve": reserve,
        "reserve_setting": RESERVE_SETTING,
        "disk_state": _disk_state(disk.free if disk else None, reserve),
        "poll_s": POLL_S,
    }


def _disk_state(free: int | None, reserve: int) -> str:
    """``full`` below the reserve (writes are refused), ``low`` below twice it, else ``ok``."""
    if free is None or reserve <= 0:
        return "ok"
    if free < reserve:
        return "full"
    return "low" if free < 2 * reserve else "ok"


# --- pages -----------------------------------------------------------------------------------


@router.get("/system", response_class=HTMLResponse)
async def system_page(request: Request, stores: StoresDep) -> HTMLResponse:
    """CPU, RAM, the data dir's disk with the reserve, the GPUs, and ydc's own processes
    (the page's content for htmx, which polls it)."""
    reading = await _reading(request)
    context = {**_context(request, reading), "tasks": await _tasks(stores, reading)}
    response = render(request, PAGE, context, fragment="system/_content.html")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/system/indicator", response_class=HTMLResponse)
async def system_indicator(request: Request, stores: StoresDep) -> HTMLResponse:
    """The header's one-line summary (htmx polls it from every page); the system page for a
    browser that asks for it itself."""
    reading = await _reading(request)
    context = _context(request, reading)
    if not request.headers.get("hx-request"):
        context["tasks"] = await _tasks(stores, reading)
    response = render(request, PAGE, context, fragment="system/_indicator.html")
    response.headers["Cache-Control"] = "no-store"
    return response


# --- API -------------------------------------------------------------------------------------


@api_router.get("/system", response_model=SystemOut)
async def get_system(request: Request, stores: StoresDep) -> SystemOut:
    """The machine's CPU share, RAM, the free disk where the data dir lives (and the reserve
    kept there), its GPUs (from nvidia-smi) and ydc's own processes."""
    return SystemOut.of(await _reading(request), stores.disk_reserve)
