"""Pure readers of the pixel-box annotation formats ydc imports: COCO JSON and Pascal VOC XML.

Nothing here touches a disk or a database: the caller reads the bytes (and parses the JSON), and
gets back boxes in pixels of the source image, as the source wrote them. Clamping to the image,
refusing boxes outside it and matching class names are the caller's business. What a reader
leaves out is never silent: each thing skipped comes back as ``(reason key, example)`` so the
import report can say how many were left out, why, and where to find one.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from app.domain.errors import Invalid

# Reason keys for the things a reader leaves out.
CROWD = "crowd annotation"
UNKNOWN_IMAGE = "annotation of an image the file does not list"
UNKNOWN_CATEGORY = "annotation of a category the file does not list"
MALFORMED_BOX = "malformed box"
NO_CLASS_NAME = "object without a class name"

# A VOC file describes one image: even thousands of objects stay far below this.
MAX_VOC_BYTES = 2 * 1024 * 1024

# Markers of a document type declaration, in every encoding expat detects by itself (so a
# UTF-16 document cannot slip an entity declaration past a check of the raw bytes).
_DTD_MARKERS: tuple[bytes, ...] = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)


@dataclass(frozen=True)
class PixelBox:
    """One box in pixels of the source image (it may lie partly or wholly outside the image)."""

    category: str  # the class name as the source writes it
    left: float
    top: float
    right: float
    bottom: float


@dataclass
class SourceImage:
    """One image an annotation file describes, with the boxes kept and the annotations left out.

    ``annotated`` is True when the source gave the image at least one annotation (kept or
    skipped): an image without any means "no objects", not "not labelled yet".
    """

    file_name: str
    width: int | None  # declared size; None when absent or not a positive integer
    height: int | None
    boxes: list[PixelBox] = field(default_factory=list)
    annotated: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CocoDataset:
    """A COCO detection document: its classes, its images in listed order, what was left out."""

    classes: list[str]
    images: list[SourceImage]
    skipped: list[tuple[str, str]]  # annotations that belong to no listed image
    dropped_categories: list[str]  # placeholder categories (Roboflow's dataset-named category 0)


def _name_key(name: str) -> str:
    """The key two class names are the same class under, as the project's class list has it
    (``validation.validate_class_names``): surrounding spaces and case ignored."""
    return name.strip().casefold()


# --- COCO -------------------------------------------------------------------------------------


def looks_like_coco(raw: object) -> bool:
    """Whether parsed JSON has the shape of a COCO document (list-valued ``images``,
    ``annotations`` and ``categories``)."""
    return isinstance(raw, dict) and all(
        isinstance(raw.get(key), list) for key in ("images", "annotations", "categories")
    )


def read_coco(raw: object, *, where: str) -> CocoDataset:
    """The classes, images and pixel boxes of a parsed COCO JSON document; ``Invalid`` (naming
    ``where``) when it is not a COCO detection document."""
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: is not a COCO JSON document (expected an object at the top).")
    lists: dict[str, list[Any]] = {}
    for key in ("images", "annotations", "categories"):
        value = raw.get(key)
        if not isinstance(value, list):
            problem = "has no" if value is None else "has a non-list"
            raise Invalid(f"{where}: is not a COCO JSON document: it {problem} {key!r} list.")
        for position, entry in enumerate(value, start=1):
            if not isinstance(entry, dict):
                raise Invalid(f"{where}: entry {position} of {key!r} is not an object.")
        lists[key] = value

    annotations: list[dict[str, Any]] = lists["annotations"]
    category_names, dropped = _coco_categories(lists["categories"], annotations, where=where)
    classes: list[str] = []
    for name in category_names.values():
        if name not in classes:
            classes.append(name)

    images: list[SourceImage] = []
    by_id: dict[object, SourceImage] = {}
    for position, entry in enumerate(lists["images"], start=1):
        image_id = entry.get("id")
        if not _is_id(image_id):
            raise Invalid(f"{where}: image {position} has no id (a number or a text).")
        file_name = entry.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            raise Invalid(f"{where}: image {image_id} has no file_name.")
        if image_id in by_id:
            raise Invalid(f"{where}: two images have the id {image_id}.")
        image = SourceImage(
            file_name=file_name,
            width=_positive_int(entry.get("width")),
            height=_positive_int(entry.get("height")),
        )
        images.append(image)
        by_id[image_id] = image

    skipped: list[tuple[str, str]] = []
    for position, annotation in enumerate(annotations, start=1):
        ann_id = annotation.get("id", f"#{position}")
        image_id = annotation.get("image_id")
        found = by_id.get(image_id) if _is_id(image_id) else None
        if found is None:
            skipped.append((UNKNOWN_IMAGE, f"annotation {ann_id} of image id {image_id}"))
            continue
        found.annotated = True
        example = f"annotation {ann_id} of {found.file_name}"
        if annotation.get("iscrowd"):
            found.skipped.append((CROWD, example))
            continue
        category_id = annotation.get("category_id")
        category = category_names.get(category_id) if _is_int(category_id) else None
        if category is None:
            found.skipped.append((UNKNOWN_CATEGORY, f"{example} (category id {category_id})"))
            continue
        ltrb = _coco_bbox(annotation.get("bbox"))
        if ltrb is None:
            found.skipped.append((MALFORMED_BOX, example))
            continue
        found.boxes.append(PixelBox(category, *ltrb))
    return CocoDataset(classes=classes, images=images, skipped=skipped, dropped_categories=dropped)


def _coco_categories(
    categories: list[dict[str, Any]], annotations: list[dict[str, Any]], *, where: str
) -> tuple[dict[int, str], list[str]]:
    """Category id -> class name in id order (a duplicate name maps to its first category's
    name), and the names of the placeholder categories dropped."""
    named: dict[int, tuple[str, str | None]] = {}
    for position, entry in enumerate(categories, start=1):
        category_id = entry.get("id")
        if not _is_int(category_id):
            raise Invalid(f"{where}: category {position} has no whole-number id.")
        name = entry.get("name")
        if name is None or not str(name).strip():
            raise Invalid(f"{where}: category {category_id} has no name.")
        if category_id in named:
            raise Invalid(f"{where}: two categories have the id {category_id}.")
        supercategory = entry.get("supercategory")
        named[category_id] = (str(name), None if supercategory is None else str(supercategory))

    used = {a.get("category_id") for a in annotations if _is_int(a.get("category_id"))}
    # Roboflow writes the dataset itself as category 0: no annotation uses it and every real
    # category names it as supercategory. Such a category is a heading, not a class.
    dropped_ids = [
        category_id
        for category_id, (name, _) in named.items()
        if category_id not in used
        and any(
            other_id != category_id
            and supercategory is not None
            and _name_key(supercategory) == _name_key(name)
            for other_id, (_, supercategory) in named.items()
        )
    ]
    names: dict[int, str] = {}
    first_of: dict[str, str] = {}
    for category_id in sorted(named):
        if category_id in dropped_ids:
            continue
        name = named[category_id][0]
        names[category_id] = first_of.setdefault(_name_key(name), name)
    dropped = [named[category_id][0] for category_id in sorted(dropped_ids)]
    return names, dropped


def _coco_bbox(bbox: object) -> tuple[float, float, float, float] | None:
    """``[x, y, width, height]`` as (left, top, right, bottom); None unless four finite
    numbers with a positive width and height."""
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        return None
    if not all(_is_number(v) for v in bbox):
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except OverflowError:  # a JSON integer beyond any float
        return None
    right, bottom = x + w, y + h
    if not all(math.isfinite(v) for v in (x, y, w, h, right, bottom)) or w <= 0 or h <= 0:
        return None
    return x, y, right, bottom


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: object) -> bool:
    """COCO ids are numbers; some converters write texts. ``True`` is neither."""
    return _is_int(value) or isinstance(value, str)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(value: object) -> int | None:
    """A declared image side: a positive whole number (``256`` or ``256.0``), else None."""
    if _is_int(value):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        return None
    return number if number > 0 else None


# --- Pascal VOC -------------------------------------------------------------------------------


def read_voc(data: bytes, *, where: str) -> SourceImage:
    """The image and pixel boxes of one Pascal VOC XML file (labelImg, CVAT, Roboflow).

    Coordinates are read as floats (CVAT writes ``12.5``) and taken as they stand: VOC's
    1-based pixel convention is not undone, because one pixel is below the tolerance within
    which the caller clamps boxes to the image. ``<difficult>`` and ``<truncated>`` are ignored
    (such objects are kept). ``Invalid`` (naming ``where``) for a file over 2 MB, any document
    type declaration (entity expansion), malformed XML, a root other than ``<annotation>``, or
    a file that names no image.
    """
    if len(data) > MAX_VOC_BYTES:
        raise Invalid(
            f"{where}: is {len(data):,} bytes; a Pascal VOC file may be at most "
            f"{MAX_VOC_BYTES // (1024 * 1024)} MB."
        )
    if any(marker in data for marker in _DTD_MARKERS):
        raise Invalid(
            f"{where}: declares a DOCTYPE or entities, which Pascal VOC files never need; "
            "refused (entity expansion)."
        )
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise Invalid(f"{where}: is not well-formed XML ({error}).") from None
    if root.tag != "annotation":
        raise Invalid(
            f"{where}: is not a Pascal VOC file (its root is <{root.tag}>, not <annotation>)."
        )

    file_name = (root.findtext("filename") or "").strip()
    if not file_name:
        # labelImg on Windows writes backslashes in <path>.
        path = (root.findtext("path") or "").strip().replace("\\", "/")
        file_name = path.rstrip("/").rsplit("/", 1)[-1]
    if not file_name:
        raise Invalid(f"{where}: names no image (neither <filename> nor <path>).")

    size = root.find("size")
    image = SourceImage(
        file_name=file_name,
        width=None if size is None else _positive_int_text(size.findtext("width")),
        height=None if size is None else _positive_int_text(size.findtext("height")),
    )
    for number, obj in enumerate(root.findall("object"), start=1):
        image.annotated = True
        name = obj.findtext("name")
        if name is None or not name.strip():
            image.skipped.append((NO_CLASS_NAME, f"object {number}"))
            continue
        ltrb = _voc_bndbox(obj.find("bndbox"))
        if ltrb is None:
            image.skipped.append((MALFORMED_BOX, f"object {number} ({name.strip()})"))
            continue
        image.boxes.append(PixelBox(name, *ltrb))
    return image


def _voc_bndbox(bndbox: ET.Element | None) -> tuple[float, float, float, float] | None:
    """``<xmin> <ymin> <xmax> <ymax>`` as (left, top, right, bottom); None when missing, not
    finite numbers, or empty (``xmax <= xmin`` or ``ymax <= ymin``)."""
    if bndbox is None:
        return None
    values: list[float] = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        value = _float_text(bndbox.findtext(tag))
        if value is None:
            return None
        values.append(value)
    left, top, right, bottom = values
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def _float_text(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _positive_int_text(text: str | None) -> int | None:
    value = _float_text(text)
    return _positive_int(value) if value is not None else None


# --- CVAT labelmap ----------------------------------------------------------------------------


def read_labelmap(text: str) -> list[str]:
    """The class names of CVAT's VOC ``labelmap.txt`` (``name:r,g,b:parts:actions`` lines), in
    order, without repeats and without the ``background`` entry CVAT puts first."""
    names: list[str] = []
    seen: set[str] = set()
    first = True
    for line in text.lstrip("\ufeff").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name = stripped.split(":", 1)[0].strip()
        was_first, first = first, False
        if not name or (was_first and name == "background"):
            continue
        if _name_key(name) not in seen:
            seen.add(_name_key(name))
            names.append(name)
    return names
