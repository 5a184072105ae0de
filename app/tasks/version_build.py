"""Writes a dataset version's folder from its source images: the Ultralytics layout
(``images/<split>``, ``labels/<split>``, ``data.yaml``), hard links for images the recipe leaves
as they are, new files only for transformed ones, the same names and bytes for the same recipe.

The caller (the version task) reads the sources from the stores and hands them over in a fixed
order; everything here is files and pixels.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image as PILImage

from app.domain.box_geometry import YoloBox, plan_tiles
from app.domain.errors import Invalid
from app.domain.models import SPLITS
from app.domain.splits import draw_split
from app.domain.versions import Recipe, SourceImage, plan_augmentation
from app.domain.yolo import data_yaml_dict, format_label_lines
from app.tasks.version_pixels import Piece, augment, preprocess

EXIF_ORIENTATION = 0x0112
KEEP_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}  # written again in their own format
JPEG_QUALITY = 95
# Why os.link may fail where a copy is the answer: another device, no links on this file system.
NO_LINKS = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}

Progress = Callable[[float, str], Awaitable[None]]


@dataclass
class VersionCounts:
    """What a version holds: images and boxes per split, boxes per split and class."""

    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    boxes: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {} for s in SPLITS})
    linked: int = 0  # images hard-linked (or copied) unchanged
    written: int = 0  # images encoded anew
    dropped_empty: int = 0  # images or tiles left out for having no boxes

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "boxes": self.boxes,
            "linked": self.linked,
            "written": self.written,
            "dropped_empty": self.dropped_empty,
        }


def transforms_pixels(recipe: Recipe, image: SourceImage) -> bool:
    """Whether the original file cannot stand for the image: resized, cut into tiles (larger
    than a tile), or turned upright from its EXIF orientation. Augmented copies are always
    new."""
    pre = recipe.preprocessing
    if pre.resize is not None:
        return True
    size, orientation = _header(image.path)
    if pre.tile is not None and (size is None or max(size) > pre.tile):
        return True
    return pre.auto_orient and orientation not in (None, 1)


def _header(path: Path) -> tuple[tuple[int, int] | None, int | None]:
    """The image's size and EXIF orientation from its header (no pixels decoded)."""
    try:
        with PILImage.open(path) as header:
            value = header.getexif().get(EXIF_ORIENTATION)
            return header.size, value if isinstance(value, int) else None
    except (PILImage.UnidentifiedImageError, OSError, ValueError):
        return None, None


def version_split(recipe: Recipe, image: SourceImage) -> str:
    """The image's split in the version: its own, or drawn again from its hash by ratio."""
    if recipe.split_mode == "redraw":
        return draw_split(image.sha256, recipe.ratios)
    return image.split


async def build_folder(
    folder: Path,
    classes: list[str],
    sources: Iterable[SourceImage],
    total: int,
    recipe: Recipe,
    progress: Progress,
) -> VersionCounts:
    """Write the version into ``folder`` (which must not exist yet), image by image in the
    order given; ``progress`` may raise to cancel (the caller removes the half-made folder)."""
    await asyncio.to_thread(_make_folders, folder)
    counts = VersionCounts()
    names = [" ".join(c.split()) for c in classes]
    taken: set[str] = set()
    for done, source in enumerate(sources):
        split = version_split(recipe, source)
        # Decoding and encoding off the event loop: the task's heartbeat keeps beating.
        await asyncio.to_thread(_write_image, folder, split, source, recipe, counts, names, taken)
        if done % 8 == 0 or done + 1 == total:
            await progress((done + 1) / max(total, 1), f"{done + 1} of {total} images")
    data = yaml.safe_dump(data_yaml_dict(names), sort_keys=False, allow_unicode=True)
    await asyncio.to_thread((folder / "data.yaml").write_text, data)
    return counts


def _unique(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when an earlier output took it (compared ignoring
    case: a version may be unpacked on a case-insensitive disk). Joined names can meet: project
    ``a`` image ``b__c`` and project ``a__b`` image ``c``, or ``img`` copied as ``img_aug1``
    beside a source image named ``img_aug1``; a second output must never land on the first
    (a linked first output is the project's own file)."""
    name, n = stem, 1
    while name.casefold() in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name.casefold())
    return name


def _make_folders(folder: Path) -> None:
    if folder.exists():
        raise Invalid(f"The version folder {folder.name} exists already.")
    for split in SPLITS:
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)


def _write_image(
    folder: Path,
    split: str,
    source: SourceImage,
    recipe: Recipe,
    counts: VersionCounts,
    names: list[str],
    taken: set[str],
) -> None:
    """The image's outputs: the original linked (or its preprocessed pieces written), then, in
    the train split, the augmented copies of each piece."""
    pre = recipe.preprocessing
    base = f"{source.project}__{source.stem}"
    suffix = source.suffix.lower() if source.suffix.lower() in KEEP_SUFFIXES else ".jpg"
    augmenting = split == "train" and recipe.augmentation.enabled
    if not transforms_pixels(recipe, source):
        if pre.drop_empty and not source.boxes:
            counts.dropped_empty += 1
            return
        name = _unique(base, taken)
        _link(source.path, folder / "images" / split / f"{name}{source.suffix.lower()}")
        _labels(folder, split, name, source.boxes, counts, names)
        counts.linked += 1
        pieces = [Piece(_decode(source.path), source.boxes)] if augmenting else []
    else:
        image = _decode(source.path)
        pieces = preprocess(image, source.boxes, pre)  # without the empty ones, when asked
        counts.dropped_empty += _piece_count(image, recipe) - len(pieces)
        for piece in pieces:
            name = _unique(f"{base}{piece.suffix}", taken)
            _write_piece(folder, split, name, suffix, piece, counts, names)
    if not augmenting:
        return
    for piece in pieces:
        key = f"{source.sha256}{piece.suffix}"
        for copy in range(recipe.augmentation.outputs):
            moved = augment(piece.image, piece.boxes, plan_augmentation(recipe, key, copy))
            name = _unique(f"{base}{piece.suffix}_aug{copy + 1}", taken)
            _write_piece(folder, split, name, suffix, moved, counts, names)


def _piece_count(image: np.ndarray, recipe: Recipe) -> int:
    """How many pieces preprocessing makes of the image before dropping empty ones."""
    pre = recipe.preprocessing
    height, width = image.shape[:2]
    if pre.tile is None or (width <= pre.tile and height <= pre.tile):
        return 1
    return len(plan_tiles(width, height, pre.tile, pre.tile_overlap))


def _decode(path: Path) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # EXIF orientation applied: boxes are upright
    if image is None:
        raise Invalid(f"{path.name} cannot be decoded: is the file damaged?")
    return image


def _link(source: Path, target: Path) -> None:
    """A hard link: the version costs no bytes for an image it leaves alone. A copy where the
    file system cannot link (another device, no links) -- never over an existing file, which
    could be a link to a project's own image."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in NO_LINKS:
            raise
        with source.open("rb") as src, target.open("xb") as dst:
            shutil.copyfileobj(src, dst)


def _write_piece(
    folder: Path,
    split: str,
    name: str,
    suffix: str,
    piece: Piece,
    counts: VersionCounts,
    names: list[str],
) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix in {".jpg", ".jpeg"} else []
    ok, buf = cv2.imencode(suffix, piece.image, params)
    if not ok:
        raise Invalid(f"{name}{suffix} could not be encoded.")
    # "x": a new file or an error, never bytes written into an existing (linked) file.
    with (folder / "images" / split / f"{name}{suffix}").open("xb") as out:
        out.write(buf.tobytes())
    _labels(folder, split, name, piece.boxes, counts, names)
    counts.written += 1


def _labels(
    folder: Path,
    split: str,
    name: str,
    boxes: list[YoloBox],
    counts: VersionCounts,
    names: list[str],
) -> None:
    rows = [(b.class_id, b.x, b.y, b.width, b.height) for b in boxes]
    (folder / "labels" / split / f"{name}.txt").write_text(format_label_lines(rows))
    counts.images[split] += 1
    per_class = Counter(names[b.class_id] for b in boxes)
    for class_name, n in per_class.items():
        counts.boxes[split][class_name] = counts.boxes[split].get(class_name, 0) + n
