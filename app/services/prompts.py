"""YOLO-World use cases: a project's text prompts (read, checked, saved; the store mirrors them
to ``prompts.yaml``), what YOLO-World needs and whether it is there, keeping the two weight
files a user uploads, and queueing an auto-label run with the prompts.

YOLO-World needs three things ydc never downloads: its weights (``YDC_WORLD_WEIGHTS`` or an
upload), the CLIP ViT-B/32 text encoder's weights (``YDC_CLIP_WEIGHTS`` or an upload) and the
``clip`` Python package (``make install`` puts it in). ``world_status`` says which are missing
and how to provide each, so a page can tell the user exactly that instead of failing later.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.config import Settings
from app.domain.autolabel import (
    DEFAULT_IMGSZ,
    fraction,
    image_size,
    selection_filter,
)
from app.domain.errors import Invalid, NotFound
from app.domain.models import ClassInfo, TaskInfo
from app.domain.prompts import check_prompts, prompt_table
from app.domain.stores import Stores
from app.services.autolabel import KIND, MAX_ATTEMPTS
from app.services.models import ZIP_MAGIC
from app.services.preferences import autolabel_defaults
from app.services.uploads import keep_upload

FOLDER = "yolo-world"  # under the data dir: the uploaded weights
WORLD_FILE = "yolo-world.pt"
CLIP_FILE = "clip-vit-b-32.pt"


@dataclass(frozen=True)
class Requirement:
    """One thing YOLO-World needs: whether it is there, where it is looked for, and what to
    provide when it is not."""

    key: str  # "weights", "text_encoder", "package"
    title: str
    ready: bool
    where: str
    provide: str
    uploadable: bool


@dataclass(frozen=True)
class WorldStatus:
    requirements: list[Requirement]
    weights: Path
    clip_weights: Path

    @property
    def ready(self) -> bool:
        return all(r.ready for r in self.requirements)

    @property
    def missing(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.ready]

    def refusal(self) -> str:
        """What to provide, as one message (for a refused run)."""
        return "YOLO-World is not ready: " + " ".join(r.provide for r in self.missing)


def world_status(settings: Settings) -> WorldStatus:
    """Whether the YOLO-World weights, the CLIP text encoder and the ``clip`` package are
    there, looked for where the settings say (else where the uploads go)."""
    folder = settings.data_dir / FOLDER
    weights = settings.world_weights or folder / WORLD_FILE
    clip_weights = settings.clip_weights or folder / CLIP_FILE
    upload_place = "where an upload is kept"
    weights_where = "YDC_WORLD_WEIGHTS" if settings.world_weights else upload_place
    clip_where = "YDC_CLIP_WEIGHTS" if settings.clip_weights else upload_place
    requirements = [
        Requirement(
            "weights",
            "YOLO-World weights",
            weights.is_file(),
            f"{weights} ({weights_where})",
            "Provide YOLO-World weights (a .pt such as yolov8s-worldv2.pt from Ultralytics' "
            "releases): upload it here, or set YDC_WORLD_WEIGHTS to its path and restart.",
            True,
        ),
        Requirement(
            "text_encoder",
            "CLIP text encoder",
            clip_weights.is_file(),
            f"{clip_weights} ({clip_where})",
            "Provide the CLIP ViT-B/32 weights (OpenAI's ViT-B-32.pt, 338 MB, the file CLIP "
            "itself keeps in ~/.cache/clip): upload it here, or set YDC_CLIP_WEIGHTS to its "
            "path and restart.",
            True,
        ),
        Requirement(
            "package",
            "CLIP Python package",
            importlib.util.find_spec("clip") is not None,
            "ydc's environment",
            "Install the CLIP package into ydc's environment: run `make install` (it installs "
            "openai-clip), then restart.",
            False,
        ),
    ]
    return WorldStatus(requirements, weights, clip_weights)


async def upload_world_file(settings: Settings, key: str, handle: IO[bytes], filename: str) -> Path:
    """Keep an uploaded YOLO-World (``weights``) or CLIP (``text_encoder``) file where
    ``world_status`` looks for it, replacing the earlier one whole. ``Invalid`` for another
    key, a name that is no ``.pt`` or bytes that are no PyTorch archive."""
    targets = {"weights": WORLD_FILE, "text_encoder": CLIP_FILE}
    if key not in targets:
        raise Invalid(f"{key!r} is not a YOLO-World file (weights or text_encoder).")
    what = "YOLO-World weights" if key == "weights" else "the CLIP ViT-B/32 weights"
    if not filename.lower().endswith(".pt"):
        raise Invalid(f"{filename!r} is not a .pt file: choose {what}.")
    handle.seek(0)
    if not handle.read(len(ZIP_MAGIC)).startswith(ZIP_MAGIC):
        raise Invalid(
            f"{filename!r} is not a PyTorch weights file (a .pt file is a zip archive; this one "
            "does not start like one)."
        )
    target = settings.data_dir / FOLDER / targets[key]
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        if not await keep_upload(handle, staged, max_bytes=settings.max_import_bytes, what=what):
            raise Invalid(f"{filename!r} is empty.")
        await asyncio.to_thread(os.replace, staged, target)
    finally:
        await asyncio.to_thread(staged.unlink, missing_ok=True)
    return target


async def class_prompts(stores: Stores, project: str) -> list[tuple[ClassInfo, list[str]]]:
    """The project's classes in order, each with its prompts. ``NotFound``."""
    if await stores.dataset.get(project) is None:
        raise NotFound(f"There is no project named {project!r}.")
    return [(c, list(c.prompts)) for c in await stores.dataset.get_classes(project)]


async def save_prompts(
    stores: Stores, project: str, prompts: dict[int, list[str]]
) -> dict[int, list[str]]:
    """Replace the prompts of the given classes (index → prompts; an empty list clears them),
    checked together with the other classes' (a prompt belongs to one class). Returns every
    class's prompts. ``NotFound``, ``Invalid``."""
    classes = await class_prompts(stores, project)
    names = [c.name for c, _ in classes]
    merged = {index: texts for index, (_, texts) in enumerate(classes)}
    merged.update(prompts)
    cleaned = check_prompts(names, merged)
    await stores.dataset.save_prompts(project, {i: cleaned[i] for i in prompts})
    return cleaned


async def start_prompt_autolabel(
    stores: Stores, settings: Settings, project: str, params: dict[str, Any]
) -> TaskInfo:
    """Queue an auto-label run of YOLO-World with the project's prompts over ``selection``
    (``conf``, ``iou``, ``imgsz`` as for a model). ``NotFound`` (project); ``Invalid`` when
    YOLO-World is not ready (the message says what to provide), no class has a prompt, or the
    selection or a threshold is wrong."""
    info = await stores.dataset.get(project)
    if info is None:
        raise NotFound(f"There is no project named {project!r}.")
    status = world_status(settings)
    if not status.ready:
        raise Invalid(status.refusal())
    texts, _ = prompt_table(await stores.dataset.get_prompts(info.name))
    if not texts:
        raise Invalid(
            f"No class of {info.name!r} has a prompt: write what to look for on the prompts page."
        )
    selection = str(params.get("selection") or "unlabelled")
    filters = selection_filter(selection)
    defaults = await autolabel_defaults(stores)  # the settings page's thresholds
    conf = fraction(params.get("conf"), "confidence", defaults["conf"])
    iou = fraction(params.get("iou"), "IoU threshold", defaults["iou"])
    imgsz = image_size(params.get("imgsz"), DEFAULT_IMGSZ)
    if not await stores.image.count(info.name, filters):
        raise Invalid(f"Project {info.name!r} has no images in the selection {selection!r}.")
    task_params = {
        "prompts": True,
        "world_weights": str(status.weights),
        "clip_weights": str(status.clip_weights),
        "selection": selection,
        "conf": conf,
        "iou": iou,
        "imgsz": imgsz,
    }
    return await stores.task.enqueue(
        KIND, task_params, dataset=info.name, max_attempts=MAX_ATTEMPTS
    )


__all__ = [
    "CLIP_FILE",
    "FOLDER",
    "WORLD_FILE",
    "Requirement",
    "WorldStatus",
    "class_prompts",
    "save_prompts",
    "start_prompt_autolabel",
    "upload_world_file",
    "world_status",
]
