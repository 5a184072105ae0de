"""The model registry's use cases: a project's models as a page shows them, make one active,
delete one (the active one only when the person says so twice), its weights file, an existing
``.pt`` uploaded as a model, its export to ONNX (a task) and the exported file, and the log a
training keeps.

A model's ONNX export lies beside its weights, ``<its folder>/best.onnx``: deleting the model
deletes it with the folder.

A ``.pt`` file is a zip archive (``torch.save``'s format since PyTorch 1.6): an upload that does
not start with the zip magic ``PK\\x03\\x04`` is refused before anything is stored.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.models import ModelInfo, TaskInfo
from app.domain.stores import Stores
from app.domain.training import KIND as TRAIN
from app.domain.validation import IMAGE_SUFFIXES
from app.services.projects import get_project
from app.services.system import ensure_disk_room, size_of
from app.services.uploads import keep_upload

UPLOADED = "uploaded"  # the base_model of a model that came in as a file
ZIP_MAGIC = b"PK\x03\x04"
LOG_LINES = 500
ONNX_KIND = "export_onnx"  # the task kind of an ONNX export
ONNX_NAME = "best.onnx"  # in the model's folder, beside its weights
ONNX_MAX_ATTEMPTS = 2  # it only writes its own file, atomically: running it again is safe


@dataclass(frozen=True)
class ModelView:
    """A model as the models page shows it: the registry's row and what its metrics say."""

    info: ModelInfo
    final: dict[str, float] = field(default_factory=dict)  # the last epoch's figures
    images: dict[str, int] = field(default_factory=dict)  # trained on: images per split
    boxes: int | None = None
    version: str | None = None  # the dataset version it was trained on (None: a snapshot)
    duration_s: float | None = None
    device: str | None = None
    task_id: int | None = None
    files: list[tuple[str, int]] = field(default_factory=list)  # its folder: (name, bytes)
    has_onnx: bool = False  # exported to ONNX: its folder holds ONNX_NAME
    # What its training took at its peak (bytes; see app.tasks.training._peak_resources):
    # None for an uploaded model, one trained by an older ydc, or (GPU) one trained on the CPU.
    peak_ram_bytes: int | None = None
    peak_gpu_bytes: int | None = None
    peak_gpu_reserved_bytes: int | None = None

    @property
    def name(self) -> str:
        return self.info.name


def _floats(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    found = {}
    for key, value in raw.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            found[str(key)] = float(value)
    return found


def model_view(info: ModelInfo) -> ModelView:
    """What a model's metrics say, read leniently (a model uploaded or trained by an older
    ydc has fewer of them)."""
    metrics = info.metrics or {}
    final = _floats(metrics.get("final"))
    if not final and isinstance(metrics.get("epochs"), list) and metrics["epochs"]:
        final = _floats(metrics["epochs"][-1])
    raw_snapshot = metrics.get("snapshot")
    snapshot: dict[str, Any] = raw_snapshot if isinstance(raw_snapshot, dict) else {}
    raw_images = snapshot.get("images")
    images: dict[str, Any] = raw_images if isinstance(raw_images, dict) else {}
    folder = info.path.parent
    files = (
        sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())
        if folder.is_dir()
        else []
    )
    task_id = metrics.get("task_id")

    def count(key: str) -> int | None:
        value = metrics.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return ModelView(
        info=info,
        final=final,
        images={str(k): int(v) for k, v in images.items() if isinstance(v, int)},
        boxes=snapshot.get("boxes") if isinstance(snapshot.get("boxes"), int) else None,
        version=str(snapshot["version"]) if snapshot.get("version") else None,
        duration_s=_floats(metrics).get("duration_s"),
        device=str(metrics["device"]) if metrics.get("device") is not None else None,
        task_id=task_id if isinstance(task_id, int) else None,
        files=files,
        has_onnx=any(name == ONNX_NAME for name, _ in files),
        peak_ram_bytes=count("peak_ram_bytes"),
        peak_gpu_bytes=count("peak_gpu_bytes"),
        peak_gpu_reserved_bytes=count("peak_gpu_reserved_bytes"),
    )


async def project_models(stores: Stores, project: str) -> list[ModelView]:
    """The project's models, newest first. ``NotFound`` for an unknown project."""
    found = await get_project(stores, project)
    models = await stores.model.list(dataset=found.name)
    return await asyncio.to_thread(lambda: [model_view(m) for m in models])


async def get_model(stores: Stores, name: str) -> ModelView:
    """One model. ``NotFound`` when there is none of that name."""
    info = await stores.model.get(name)
    if info is None:
        raise NotFound(f"There is no model named {name!r}.")
    return await asyncio.to_thread(model_view, info)


async def activate_model(stores: Stores, name: str) -> ModelInfo:
    """Make the model its project's active one (the others become inactive)."""
    await stores.model.set_active(name)
    info = await stores.model.get(name)
    if info is None:  # deleted in between
        raise NotFound(f"There is no model named {name!r}.")
    return info


async def delete_model(stores: Stores, name: str, *, active_confirmed: bool = False) -> ModelInfo:
    """Delete the model and its weights. The project's active model is deleted only with
    ``active_confirmed`` (``Conflict`` otherwise: something may be using it)."""
    info = await stores.model.get(name)
    if info is None:
        raise NotFound(f"There is no model named {name!r}.")
    if info.is_active and not active_confirmed:
        raise Conflict(
            f"{name!r} is the active model of {info.dataset_name}: tick “yes, delete the "
            "active model” to delete it anyway."
        )
    if not await stores.model.delete(name):
        raise NotFound(f"There is no model named {name!r}.")
    return info


async def model_weights(stores: Stores, name: str) -> Path:
    """The model's weights file (its best epoch's). ``NotFound`` when the model or the file
    is missing."""
    return await stores.model.load(name)


def onnx_path(info: ModelInfo) -> Path:
    """Where the model's ONNX export lies (or will): beside its weights."""
    return info.path.parent / ONNX_NAME


async def start_onnx_export(stores: Stores, model: str) -> TaskInfo:
    """Queue the export of ``model``'s weights to ONNX. ``NotFound`` for an unknown model or
    one whose weights are missing."""
    info = await stores.model.get(model)
    if info is None:
        raise NotFound(f"There is no model named {model!r}.")
    await stores.model.load(info.name)  # NotFound now, not in the worker, when they are gone
    return await stores.task.enqueue(
        ONNX_KIND, {"model": info.name}, dataset=info.dataset_name, max_attempts=ONNX_MAX_ATTEMPTS
    )


async def onnx_file(stores: Stores, model: str) -> Path:
    """The model's ONNX export. ``NotFound`` for an unknown model or one not exported yet."""
    info = await stores.model.get(model)
    if info is None:
        raise NotFound(f"There is no model named {model!r}.")
    path = onnx_path(info)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(f"Model {model!r} has not been exported to ONNX yet.")
    return path


def check_weights_header(head: bytes, filename: str) -> None:
    """Refuse what is not a PyTorch ``.pt`` file: the name and the zip magic."""
    if not filename.lower().endswith(".pt"):
        raise Invalid(f"{filename!r} is not a .pt file: choose the weights of a YOLO model.")
    if not head.startswith(ZIP_MAGIC):
        raise Invalid(
            f"{filename!r} is not a PyTorch weights file (a .pt file is a zip archive; this one "
            "does not start like one)."
        )


async def upload_model(
    stores: Stores, project: str, name: str, handle: IO[bytes], filename: str
) -> ModelInfo:
    """Register an uploaded ``.pt`` as a model of the project (base ``uploaded``). ``Invalid``
    for a bad name or a file that is no PyTorch archive, ``AlreadyExists`` for a taken name."""
    found = await get_project(stores, project)
    name = name.strip()
    if not name:
        raise Invalid("Name the model.")
    handle.seek(0)
    check_weights_header(handle.read(len(ZIP_MAGIC)), filename)
    await ensure_disk_room(stores, incoming=size_of(handle))
    with tempfile.TemporaryDirectory(prefix="ydc-model-") as folder:
        staged = Path(folder) / "best.pt"
        await keep_upload(handle, staged)
        return await stores.model.save(
            name, staged, UPLOADED, found.name, 0, {"uploaded_as": filename}
        )


async def training_log(
    stores: Stores, task_id: int, *, lines: int = LOG_LINES
) -> tuple[TaskInfo, str | None, int]:
    """A training's log: its task, the last ``lines`` lines (``None`` when there is no log
    file yet, or any more) and how many lines the file has. ``NotFound`` for a task that is
    no training."""
    task = await stores.task.get(task_id)
    if task.kind != TRAIN:
        raise NotFound(f"Task {task_id} is not a training: it keeps no training log.")
    data_dir = stores.data_dir.resolve()
    written = (task.result or {}).get("log")
    path = data_dir / str(written) if written else data_dir / "training" / f"task-{task.id}"
    if not written:
        path = path / "train.log"
    path = path.resolve()
    if not path.is_relative_to(data_dir):
        return task, None, 0

    def tail() -> tuple[str | None, int]:
        try:
            with open(path, "rb") as log:
                count = 0
                kept: deque[bytes] = deque(maxlen=lines)
                for line in log:
                    count += 1
                    # A progress bar redraws its line after a carriage return: keep what a
                    # terminal would show last.
                    kept.append(line.rstrip(b"\r\n").rsplit(b"\r", 1)[-1])
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None, 0
        return "\n".join(k.decode("utf-8", "replace") for k in kept), count

    text, count = await asyncio.to_thread(tail)
    return task, text, count


__all__ = [
    "ONNX_KIND",
    "ONNX_NAME",
    "UPLOADED",
    "ModelView",
    "activate_model",
    "check_weights_header",
    "delete_model",
    "get_model",
    "model_view",
    "model_weights",
    "onnx_file",
    "onnx_path",
    "project_models",
    "start_onnx_export",
    "training_log",
    "upload_model",
]


# --- trying a model on a picture ------------------------------------------------------------

TRY_KIND = "try_model"
TRY_FOLDER = "tmp"  # the picture waits there; reconcile removes it after an hour


async def start_try(
    stores: Stores, project: str, handle: IO[bytes], filename: str, *, max_bytes: int
) -> TaskInfo:
    """Queue the project's active model on an uploaded picture (nothing is stored in the
    project). ``Invalid`` without an active model, for a name that is no image type ydc reads,
    or a picture over ``max_bytes``."""
    found = await get_project(stores, project)
    active = await stores.model.get_active(dataset=found.name)
    if active is None:
        raise Invalid(
            f"Project {found.name!r} has no active model: make one active on this page first."
        )
    suffix = Path(filename).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise Invalid(f"{filename!r} is not a picture ydc reads ({', '.join(IMAGE_SUFFIXES)}).")
    target = stores.data_dir / TRY_FOLDER / f"try-{uuid.uuid4().hex}{suffix}"
    await keep_upload(handle, target, max_bytes=max_bytes, what="The picture")
    params = {"model": active.name, "image": f"{TRY_FOLDER}/{target.name}"}
    return await stores.task.enqueue(TRY_KIND, params, dataset=found.name, max_attempts=1)


async def tried_picture(stores: Stores, task_id: int) -> Path:
    """The picture a try ran on, while it is kept. ``NotFound`` otherwise."""
    task = await stores.task.get(task_id)
    if task.kind != TRY_KIND:
        raise NotFound(f"Task {task_id} is not a model tried on a picture.")
    path = stores.data_dir / str(task.params.get("image") or "")
    if not path.is_file() or path.parent != stores.data_dir / TRY_FOLDER:
        raise NotFound("The picture is no longer kept (pictures tried go after an hour).")
    return path
