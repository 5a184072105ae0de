"""Helpers of the contract suite: sample bytes, uploads and where the mirror puts files."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path
from typing import Any

import yaml

from app.domain.models import Annotation, ImageInfo
from app.domain.stores import Stores
from tests.conftest import encode, make_image

PROJECT = "proj"
CLASSES = ("cat", "dog", "bird")
WIDTH, HEIGHT = 64, 48


def png(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """PNG bytes of a noise image, different for every seed."""
    return encode(make_image(width, height, seed), ".png")


def jpg(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    return encode(make_image(width, height, seed), ".jpg")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF APP1 segment holding only an orientation tag."""
    assert jpeg[:2] == b"\xff\xd8"
    ifd = b"\x00\x01" + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00" * 4
    payload = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


async def upload(
    stores: Stores,
    filename: str,
    *,
    split: str = "train",
    seed: int = 0,
    data: bytes | None = None,
    dataset: str = PROJECT,
) -> ImageInfo:
    """Store ``data`` (default: a PNG of ``seed``) through ``ImageStore.save_file``."""
    payload = png(seed) if data is None else data
    return await stores.image.save_file(dataset, split, filename, io.BytesIO(payload))


def box(
    class_id: int, x: float = 0.5, y: float = 0.5, w: float = 0.25, h: float = 0.25, **extra: Any
) -> Annotation:
    return Annotation(class_id, x, y, w, h, **extra)


def boxes(annotations: list[Annotation]) -> list[tuple[int, float, float, float, float]]:
    """What a YOLO label line keeps of each box (rounded as the mirror writes it)."""
    return [
        (a.class_id, round(a.x, 6), round(a.y, 6), round(a.width, 6), round(a.height, 6))
        for a in annotations
    ]


def line(class_id: int, x: float = 0.5, y: float = 0.5, w: float = 0.25, h: float = 0.25) -> str:
    return f"{class_id} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"


def projects_dir(stores: Stores) -> Path:
    return stores.data_dir / "projects"


def project_dir(stores: Stores, name: str = PROJECT) -> Path:
    return projects_dir(stores) / name


def image_file(stores: Stores, split: str, filename: str, name: str = PROJECT) -> Path:
    return project_dir(stores, name) / "images" / split / filename


def label_file(stores: Stores, split: str, filename: str, name: str = PROJECT) -> Path:
    return project_dir(stores, name) / "labels" / split / (Path(filename).stem + ".txt")


def files_under(folder: Path) -> set[str]:
    """Every file below ``folder``, as posix paths relative to it."""
    if not folder.exists():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def children(folder: Path) -> list[str]:
    """Names directly inside ``folder`` (none when it does not exist)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def tmp_files(stores: Stores) -> set[str]:
    return files_under(stores.data_dir / "tmp")


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
