"""The ONNX export job: a registry model's weights exported by Ultralytics to ONNX, on the CPU,
into the model's folder as ``best.onnx`` (``app.services.models.ONNX_NAME``).

The weights are never touched: Ultralytics writes its ``.onnx`` beside the ``.pt`` it is
given, so it is given a copy in a hidden staging folder inside the model's folder (the same
filesystem), and the finished file is moved into place with ``os.replace`` after an fsync:
a reader sees the old export or the new one, never half of one. A cancel or a failure leaves
the previous export as it was.

Runs in a task worker: Ultralytics is imported here, inside the functions, after
``prepare_ultralytics`` (offline; ``YOLO_AUTOINSTALL=0``, and ``onnx``, ``onnxslim`` and
``onnxruntime`` are ydc's own dependencies, so the exporter has nothing to install).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from app.domain.errors import Invalid, NotFound
from app.domain.stores import Stores
from app.services.models import ONNX_KIND, onnx_path
from app.tasks.context import TaskContext
from app.tasks.training import prepare_ultralytics

KIND = ONNX_KIND
DEFAULT_IMGSZ = 640  # Ultralytics' default, for a model whose training size is not recorded
STAGING_PREFIX = ".onnx-"  # hidden: a sync from disk skips dot folders in a model's folder


def export_imgsz(metrics: dict[str, Any]) -> int | list[int]:
    """The image size the model was trained at (``metrics["args"]["imgsz"]``: a number, or
    ``[height, width]``), else 640."""
    args = metrics.get("args")
    raw = args.get("imgsz") if isinstance(args, dict) else None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        return int(raw)
    if isinstance(raw, str) and raw.strip().isdigit() and int(raw) > 0:
        return int(raw)
    if (
        isinstance(raw, list | tuple)
        and len(raw) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw)
    ):
        return [int(raw[0]), int(raw[1])]
    return DEFAULT_IMGSZ


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _export(weights: Path, staging: Path, imgsz: int | list[int]) -> Path:
    """Export a copy of ``weights`` in ``staging``; the ``.onnx`` written there (fsynced).
    Blocking: Ultralytics and torch."""
    copy = staging / (weights.stem + ".pt")
    shutil.copyfile(weights, copy)
    from ultralytics import YOLO

    written = YOLO(str(copy)).export(
        format="onnx", imgsz=imgsz, device="cpu", simplify=True, verbose=False
    )
    path = Path(str(written)) if written else copy.with_suffix(".onnx")
    if not path.is_file() or path.parent.resolve() != staging.resolve():
        raise RuntimeError(f"Ultralytics reported no ONNX file in {staging} (it said {written!r}).")
    _fsync(path)
    return path


def _place(staged: Path, target: Path) -> None:
    """Move the finished export into place atomically, then make the rename durable."""
    os.replace(staged, target)
    _fsync(target.parent)


async def export_model_onnx(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Export the task's ``model`` to ONNX beside its weights."""
    model_name = ctx.task.params.get("model")
    if not model_name:
        raise Invalid("The ONNX export names no model.")
    weights = await stores.model.load(model_name)
    info = await stores.model.get(model_name)
    if info is None:  # deleted in between
        raise NotFound(f"There is no model named {model_name!r}.")
    imgsz = export_imgsz(info.metrics or {})
    target = onnx_path(info)
    await ctx.progress(0.0, "loading Ultralytics")
    await asyncio.to_thread(prepare_ultralytics, stores.data_dir)
    started = time.monotonic()  # the export's own time, Ultralytics' import left out
    staging = Path(
        await asyncio.to_thread(tempfile.mkdtemp, prefix=STAGING_PREFIX, dir=target.parent)
    )
    try:
        await ctx.progress(0.1, f"exporting to ONNX at image size {imgsz}")
        staged = await asyncio.to_thread(_export, weights, staging, imgsz)
        await ctx.progress(0.95, "placing the ONNX file")  # a cancel stops before the swap
        try:
            await asyncio.to_thread(_place, staged, target)
        except FileNotFoundError:  # the model was deleted meanwhile, its folder with it
            raise NotFound(f"Model {model_name!r} was deleted during its export.") from None
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    seconds = time.monotonic() - started
    size = (await asyncio.to_thread(target.stat)).st_size
    try:
        relative = target.relative_to(stores.data_dir).as_posix()
    except ValueError:
        relative = target.resolve().relative_to(stores.data_dir.resolve()).as_posix()
    return {
        "model": model_name,
        "onnx": relative,
        "bytes": size,
        "seconds": round(seconds, 2),
        "imgsz": imgsz,
    }


__all__ = ["DEFAULT_IMGSZ", "KIND", "export_imgsz", "export_model_onnx"]
