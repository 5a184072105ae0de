"""Pure rules of importing a dataset another tool made: what a YOLO line or a pixel box means,
which files of an export are images, labels and class lists, and the report of what came in.

Every line is decided on its own (a polygon row does not make the box rows of its file
polygons), and everything left out or changed is counted under a reason a person can read,
with a few example file names. Nothing here touches a disk or a database: the importer
(``app.repositories.importer``) lists and reads the files and asks these rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePath, PurePosixPath
from typing import Any

from app.domain.errors import Invalid
from app.domain.validation import IMAGE_SUFFIXES

# A box may reach this far outside the image (a fraction of its size) and is clamped; further
# out, the line is refused: it was drawn on another image or in other units.
CLAMP_TOLERANCE = 0.01
# Six decimals (YOLO's usual precision) put the edge of a box touching the image's up to 1e-6
# past it: that is the file's rounding, kept as written (``validate_annotation`` allows it).
ROUNDING = 1e-6
EXAMPLES_PER_REASON = 10

Box = tuple[int, float, float, float, float]  # class index (in the source's names), x, y, w, h


def inside_roots(path: PurePath, roots: Sequence[PurePath]) -> bool:
    """Whether a resolved path is one of the import roots or lies under one."""
    return any(path == root or path.is_relative_to(root) for root in roots)


class Group(StrEnum):
    IMPORTED = "imported"
    CHANGED = "changed"
    SKIPPED = "skipped"


class Reason(StrEnum):
    """What the report counts. The value is the title a person reads."""

    # imported
    IMAGES = "images imported"
    LABELLED = "images with boxes"
    NO_OBJECTS = "images marked “no objects” (empty label file, or no annotations)"
    UNLABELLED = "images without labels (no label file: left to label)"
    BOXES = "boxes imported"
    CLASSES_ADDED = "classes added to the project"
    FILLED = "labels given to an image already in the project that had none"
    # changed
    POLYGON = "polygon rows read as their bounding box"
    CORNERS = "four-corner rows (9 values) read as their bounding box"
    CONFIDENCE = "rows with a sixth value (a confidence), read as a box"
    CLAMPED = "boxes up to 1% outside the image, clamped to it"
    RENAMED = "images renamed: the project already has that file name"
    RETYPED = "images renamed: their bytes are another format than the name says"
    PLACEHOLDER = "COCO placeholder categories dropped (a supercategory with no boxes)"
    # skipped: files
    DUPLICATE = "images skipped: the same bytes are already in the project or the import"
    NOT_IMAGE = "files skipped: not an image ydc can read"
    ORPHAN_LABEL = "label files without an image"
    NOT_FOUND = "images named by the dataset but not in it"
    # skipped: lines and boxes
    MALFORMED = "lines skipped: not 'class x y width height'"
    UNNAMED_CLASS = "lines skipped: a class the dataset's names do not list"
    OUTSIDE = "boxes skipped: more than 1% outside the image"
    TOO_SMALL = "boxes skipped: smaller than one pixel"
    NOT_IN_PROJECT = "boxes skipped: a class the project does not have (new classes not added)"
    BAD_CLASS_NAME = "classes not added: a name ydc cannot store (their boxes skipped)"
    CROWD = "COCO crowd annotations skipped"
    UNKNOWN_IMAGE = "COCO annotations of an image the file does not list"
    UNKNOWN_CATEGORY = "annotations of a category the file does not list"
    NO_CLASS_NAME = "VOC objects without a class name"


GROUPS: dict[Reason, Group] = {
    **{
        r: Group.IMPORTED
        for r in (
            Reason.IMAGES,
            Reason.LABELLED,
            Reason.NO_OBJECTS,
            Reason.UNLABELLED,
            Reason.BOXES,
            Reason.CLASSES_ADDED,
            Reason.FILLED,
        )
    },
    **{
        r: Group.CHANGED
        for r in (
            Reason.POLYGON,
            Reason.CORNERS,
            Reason.CONFIDENCE,
            Reason.CLAMPED,
            Reason.RENAMED,
            Reason.RETYPED,
            Reason.PLACEHOLDER,
        )
    },
}


def group_of(reason: Reason) -> Group:
    return GROUPS.get(reason, Group.SKIPPED)


# --- the report -------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """Counts per reason, each with a few examples (file names, ``file:line``)."""

    project: str = ""
    format: str = ""
    source: str = ""
    classes: list[str] = field(default_factory=list)
    counts: dict[Reason, int] = field(default_factory=dict)
    examples: dict[Reason, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, reason: Reason, example: str | None = None, count: int = 1) -> None:
        if count <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + count
        if example is not None:
            kept = self.examples.setdefault(reason, [])
            if len(kept) < EXAMPLES_PER_REASON:
                kept.append(example)

    def count(self, reason: Reason) -> int:
        return self.counts.get(reason, 0)

    def rows(self, group: Group) -> list[tuple[Reason, int, list[str]]]:
        """The reasons of a group that occurred, in the order ``Reason`` lists them."""
        return [
            (r, self.counts[r], self.examples.get(r, []))
            for r in Reason
            if r in self.counts and group_of(r) == group
        ]

    @property
    def skipped(self) -> int:
        return sum(n for r, n in self.counts.items() if group_of(r) == Group.SKIPPED)

    def summary(self) -> str:
        images, boxes = self.count(Reason.IMAGES), self.count(Reason.BOXES)
        text = (
            f"imported {images} image{'' if images == 1 else 's'}, "
            f"{boxes} box{'' if boxes == 1 else 'es'}"
        )
        if self.skipped:
            text += f"; {self.skipped} left out (see the report)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "format": self.format,
            "source": self.source,
            "classes": self.classes,
            "seconds": round(self.seconds, 3),
            "summary": self.summary(),
            "findings": [
                {
                    "reason": r.name.lower(),
                    "group": group_of(r).value,
                    "title": r.value,
                    "count": self.counts[r],
                    "examples": self.examples.get(r, []),
                }
                for r in Reason
                if r in self.counts
            ],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ImportReport:
        report = cls(
            project=str(raw.get("project", "")),
            format=str(raw.get("format", "")),
            source=str(raw.get("source", "")),
            classes=[str(c) for c in raw.get("classes", [])],
            seconds=float(raw.get("seconds", 0.0)),
        )
        by_name = {r.name.lower(): r for r in Reason}
        for finding in raw.get("findings", []):
            reason = by_name.get(str(finding.get("reason")))
            if reason is None:
                continue  # a reason a later version dropped
            report.counts[reason] = int(finding.get("count", 0))
            if finding.get("examples"):
                report.examples[reason] = [str(e) for e in finding["examples"]]
        return report


# --- one YOLO line ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """A line's box (``None`` when refused), how it was read, and why it was refused."""

    box: Box | None
    notes: tuple[Reason, ...] = ()
    refusal: Reason | None = None
    detail: str = ""


def read_yolo_line(parts: list[str], *, num_names: int, width: int, height: int) -> Line:
    """One YOLO line (already split on whitespace) against the dataset's number of class names
    and the upright image size: ``class x y w h``, ``class x y w h conf``, four corners
    ``class x1 y1 … x4 y4`` or a polygon ``class x1 y1 x2 y2 x3 y3 …`` (both read as their
    bounding box)."""
    try:
        class_value = float(parts[0])
        values = [float(p) for p in parts[1:]]
    except ValueError:
        return Line(None, refusal=Reason.MALFORMED, detail=f"{' '.join(parts)[:60]!r}")
    if not class_value.is_integer() or not all(math.isfinite(v) for v in values):
        return Line(None, refusal=Reason.MALFORMED, detail=f"{' '.join(parts)[:60]!r}")
    class_id = int(class_value)
    notes: list[Reason] = []
    written: tuple[float, float, float, float] | None = None
    if len(values) == 4:
        x, y, w, h = values
        left, top, right, bottom = x - w / 2, y - h / 2, x + w / 2, y + h / 2
        if w <= 0 or h <= 0:
            return Line(None, refusal=Reason.MALFORMED, detail="width or height is not positive")
        written = (x, y, w, h)
    elif len(values) == 5:
        x, y, w, h = values[:4]
        left, top, right, bottom = x - w / 2, y - h / 2, x + w / 2, y + h / 2
        if w <= 0 or h <= 0:
            return Line(None, refusal=Reason.MALFORMED, detail="width or height is not positive")
        notes.append(Reason.CONFIDENCE)
        written = (x, y, w, h)
    elif len(values) >= 6 and len(values) % 2 == 0:
        xs, ys = values[0::2], values[1::2]
        left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
        notes.append(Reason.CORNERS if len(values) == 8 else Reason.POLYGON)
    else:
        return Line(
            None,
            refusal=Reason.MALFORMED,
            detail=f"{len(parts)} values; a box is 'class x y width height'",
        )
    if not 0 <= class_id < num_names:
        named = f"0..{num_names - 1}" if num_names else "none"
        return Line(None, refusal=Reason.UNNAMED_CLASS, detail=f"class {class_id} (named: {named})")
    return _fitted(class_id, (left, top, right, bottom), width, height, notes, written)


def pixel_box(
    class_id: int,
    edges: tuple[float, float, float, float],
    *,
    frame: tuple[int, int],
    width: int,
    height: int,
) -> Line:
    """A box given in pixels (left, top, right, bottom) of a ``frame`` (width, height: the size
    the source declares, else the image's), as a YOLO box of the upright image."""
    frame_w, frame_h = frame
    left, top, right, bottom = edges
    if right <= left or bottom <= top:
        return Line(None, refusal=Reason.MALFORMED, detail="width or height is not positive")
    fractions = (left / frame_w, top / frame_h, right / frame_w, bottom / frame_h)
    return _fitted(class_id, fractions, width, height, [])


def _fitted(
    class_id: int,
    edges: tuple[float, float, float, float],
    width: int,
    height: int,
    notes: list[Reason],
    written: tuple[float, float, float, float] | None = None,
) -> Line:
    """Clamp edges (fractions of the image) that reach at most ``CLAMP_TOLERANCE`` outside it;
    refuse a box further out or smaller than a pixel. A box inside (to the file's rounding)
    keeps the centre and size ``written`` in the line, when it wrote them."""
    left, top, right, bottom = edges
    low, high = -CLAMP_TOLERANCE - 1e-9, 1 + CLAMP_TOLERANCE + 1e-9
    if min(left, top) < low or max(right, bottom) > high:
        return Line(
            None,
            refusal=Reason.OUTSIDE,
            detail=f"edges {left:.3f}, {top:.3f}, {right:.3f}, {bottom:.3f} of 0..1",
        )
    if min(left, top) < -ROUNDING or max(right, bottom) > 1 + ROUNDING:
        notes.append(Reason.CLAMPED)
        left, top = max(left, 0.0), max(top, 0.0)
        right, bottom = min(right, 1.0), min(bottom, 1.0)
        written = None
    w, h = right - left, bottom - top
    if w * width < 1 - 1e-6 or h * height < 1 - 1e-6:
        return Line(
            None,
            refusal=Reason.TOO_SMALL,
            detail=f"{w * width:.2f} x {h * height:.2f} px",
        )
    if written is not None:
        return Line((class_id, *written), tuple(notes))
    return Line((class_id, left + w / 2, top + h / 2, w, h), tuple(notes))


@dataclass
class LabelRead:
    """A label file read line by line: its boxes, and per line what was noted or refused."""

    boxes: list[Box] = field(default_factory=list)
    notes: list[tuple[Reason, str]] = field(default_factory=list)  # (reason, "file:line …")

    @property
    def empty(self) -> bool:
        return not self.boxes and not any(group_of(r) == Group.SKIPPED for r, _ in self.notes)


def read_yolo_labels(
    text: str, *, where: str, num_names: int, width: int, height: int
) -> LabelRead:
    """Every line of a YOLO label file (CRLF, trailing spaces and a missing final newline are
    all fine; blank lines are skipped)."""
    read = LabelRead()
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        line = read_yolo_line(parts, num_names=num_names, width=width, height=height)
        if line.box is None:
            assert line.refusal is not None
            read.notes.append((line.refusal, f"{where}:{number} ({line.detail})"))
            continue
        read.boxes.append(line.box)
        read.notes += [(note, f"{where}:{number}") for note in line.notes]
    return read


# --- what an image's bytes are ----------------------------------------------------------------

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, ".jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, ".png"),
    (b"BM", 0, ".bmp"),
    (b"WEBP", 8, ".webp"),
    (b"II*\x00", 0, ".tif"),
    (b"MM\x00*", 0, ".tif"),
)
_SAME_TYPE = {".jpeg": ".jpg", ".tiff": ".tif"}


def true_suffix(head: bytes, filename: str) -> str | None:
    """The suffix the file's first bytes call for when the name's says another type (PNG bytes
    in ``a.jpg`` → ``.png``), else ``None``."""
    suffix = PurePosixPath(filename).suffix.lower()
    for magic, offset, found in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if _SAME_TYPE.get(suffix, suffix) == found or found not in IMAGE_SUFFIXES:
                return None
            return found
    return None


# --- where things lie in an export ------------------------------------------------------------

SPLIT_WORDS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
LIST_FILE_NAMES = {"train.txt", "val.txt", "valid.txt", "validation.txt", "test.txt"}
NOT_LABELS = LIST_FILE_NAMES | {"classes.txt", "labels.txt", "labelmap.txt", "trainval.txt"}


def split_word(part: str) -> str | None:
    """The split a folder or file name stands for: ``train``, ``valid``, ``train2017``,
    ``obj_train_data``, ``instances_val2017`` …, else ``None``."""
    word = part.casefold()
    for prefix in ("obj_", "instances_", "_annotations_"):
        word = word.removeprefix(prefix)
    word = word.removesuffix("_data").rstrip("0123456789_-")
    return SPLIT_WORDS.get(word)


def split_of_path(path: str) -> str | None:
    """The split an image's folders name (the nearest folder that names one)."""
    for part in reversed(PurePosixPath(path).parts[:-1]):
        split = split_word(part)
        if split is not None:
            return split
    return None


def is_image(path: str) -> bool:
    name = PurePosixPath(path).name
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


# Pictures ydc does not store: an export holding them says so in the report, rather than
# leaving them out unseen.
OTHER_PICTURE_SUFFIXES = frozenset(
    {".gif", ".heic", ".heif", ".avif", ".jp2", ".jxl", ".svg", ".dng", ".cr2", ".nef", ".arw"}
)


def is_other_picture(path: str) -> bool:
    """A picture of a type ydc does not store (``.gif``, ``.heic`` …)."""
    name = PurePosixPath(path).name
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in OTHER_PICTURE_SUFFIXES


def clean_parts(reference: str) -> tuple[str, ...]:
    """A path as a dataset file writes it (``../train/images``, ``./images/a.jpg``,
    ``/Users/x/data/train/images``, ``C:\\data\\a.jpg``): its parts without the ones that
    only say where the author's copy was."""
    parts = PurePosixPath(reference.strip().replace("\\", "/")).parts
    return tuple(p for p in parts if p not in ("", ".", "..", "/") and not p.endswith(":"))


class Listing:
    """The files of a source (relative POSIX paths), indexed to resolve the paths dataset files
    write by their longest matching tail (an absolute path from the author's machine or
    ``../train/images`` finds ``train/images``)."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = sorted(files)
        self.file_set = set(self.files)
        self.folders: set[str] = set()
        self.by_name: dict[str, list[str]] = {}
        self.folder_files: dict[str, list[str]] = {}
        for path in self.files:
            pure = PurePosixPath(path)
            self.by_name.setdefault(pure.name.casefold(), []).append(path)
            parent = pure.parent.as_posix()
            self.folder_files.setdefault(parent, []).append(path)
            for ancestor in pure.parents:
                self.folders.add(ancestor.as_posix())

    def resolve(self, reference: str, *, base: str = ".", folder: bool = False) -> str | None:
        """The file (or folder) a dataset file's path means: relative to ``base`` first, then
        the longest tail of the path that exists, preferring matches near ``base``."""
        parts = clean_parts(reference)
        if not parts:
            return base if folder else None
        pool = self.folders if folder else self.file_set
        joined = PurePosixPath(base, *parts).as_posix() if base != "." else "/".join(parts)
        if joined in pool:
            return joined
        for start in range(len(parts)):
            tail = "/".join(parts[start:])
            if tail in pool:
                return tail
            if folder:
                found = [f for f in pool if f.endswith("/" + tail)]
            else:
                found = [
                    f
                    for f in self.by_name.get(parts[-1].casefold(), [])
                    if f.endswith("/" + tail) or f == tail
                ]
            if found:
                return _nearest(found, base)
        return None

    def images_under(self, folder: str) -> list[str]:
        prefix = "" if folder in (".", "") else folder.rstrip("/") + "/"
        return [f for f in self.files if f.startswith(prefix) and is_image(f)]

    def named(self, name: str) -> list[str]:
        return self.by_name.get(name.casefold(), [])


def _nearest(candidates: list[str], base: str) -> str:
    """The candidate sharing the most leading folders with ``base`` (then the shortest)."""
    base_parts = PurePosixPath(base).parts

    def shared(path: str) -> int:
        n = 0
        for a, b in zip(PurePosixPath(path).parts, base_parts, strict=False):
            if a != b:
                break
            n += 1
        return n

    return sorted(candidates, key=lambda p: (-shared(p), len(p), p))[0]


def yolo_label_candidates(image: str) -> list[str]:
    """Where a YOLO label file of an image may lie: ``…/labels/…`` in place of the last
    ``images`` folder (Ultralytics' rule), then beside the image (darknet, CVAT)."""
    pure = PurePosixPath(image)
    txt = pure.stem + ".txt"
    parts = list(pure.parent.parts)
    found: list[str] = []
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            swapped = [*parts[:index], "labels", *parts[index + 1 :], txt]
            found.append(PurePosixPath(*swapped).as_posix())
            break
    found.append((pure.parent / txt).as_posix())
    return found


def dataset_yaml_splits(raw: dict[str, Any]) -> dict[str, list[str]]:
    """The split entries of an Ultralytics dataset YAML (``train``/``val``/``test``; each a
    folder, a list file or a list of those). ``path`` and ``download`` are never used: the
    paths are resolved inside the source."""
    found: dict[str, list[str]] = {}
    for key in ("train", "val", "valid", "validation", "test"):
        value = raw.get(key)
        split = SPLIT_WORDS[key]
        if isinstance(value, str) and value.strip():
            found.setdefault(split, []).append(value)
        elif isinstance(value, list):
            found.setdefault(split, []).extend(str(v) for v in value if isinstance(v, str))
    return found


def read_darknet_data(text: str) -> dict[str, str]:
    """``obj.data`` (``classes = 2``, ``train = data/train.txt``, ``names = data/obj.names``)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            found[key.strip().casefold()] = value.strip()
    return found


def read_names_file(text: str) -> list[str]:
    """``obj.names`` / ``classes.txt``: one class per line; trailing blank lines dropped."""
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    return names


def notes_json_names(raw: object) -> list[str] | None:
    """Label Studio's ``notes.json``: ``categories`` [{id, name}] in id order."""
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        return None
    pairs: list[tuple[int, str]] = []
    for item in raw["categories"]:
        if isinstance(item, dict) and isinstance(item.get("id"), int) and "name" in item:
            pairs.append((item["id"], str(item["name"])))
    if not pairs:
        return None
    ids = sorted(i for i, _ in pairs)
    if ids != list(range(len(ids))):
        raise Invalid("notes.json: category ids must run 0..n-1 as the label files count them.")
    return [name for _, name in sorted(pairs)]


def list_file_entries(text: str) -> list[str]:
    """The image paths of a list file (``train.txt``): one per line, blanks and ``#`` skipped."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def class_key(name: str) -> str:
    """Classes match by name, ignoring case and surrounding spaces."""
    return name.strip().casefold()


def class_mapping(source: list[str], project: list[str]) -> tuple[dict[int, int], list[str]]:
    """Map the source's class indices onto the project's positions by name; the names the
    project lacks (in source order, each once) are returned to be added or refused."""
    positions = {class_key(name): i for i, name in enumerate(project)}
    mapping: dict[int, int] = {}
    missing: list[str] = []
    seen_missing: set[str] = set()
    for index, name in enumerate(source):
        key = class_key(name)
        if key in positions:
            mapping[index] = positions[key]
        elif key and key not in seen_missing:
            seen_missing.add(key)
            missing.append(name.strip())
    return mapping, missing


def remap(boxes: Iterable[Box], mapping: dict[int, int]) -> tuple[list[Box], int]:
    """Boxes with their class moved to the project's position; and how many had no place."""
    kept: list[Box] = []
    dropped = 0
    for class_id, x, y, w, h in boxes:
        position = mapping.get(class_id)
        if position is None:
            dropped += 1
        else:
            kept.append((position, x, y, w, h))
    return kept, dropped


Reader = Callable[[str], bytes]

__all__ = [
    "CLAMP_TOLERANCE",
    "ROUNDING",
    "Box",
    "Group",
    "ImportReport",
    "LabelRead",
    "Line",
    "Listing",
    "Reason",
    "class_key",
    "class_mapping",
    "clean_parts",
    "dataset_yaml_splits",
    "group_of",
    "inside_roots",
    "is_image",
    "is_other_picture",
    "list_file_entries",
    "notes_json_names",
    "pixel_box",
    "read_darknet_data",
    "read_names_file",
    "read_yolo_labels",
    "read_yolo_line",
    "remap",
    "split_of_path",
    "split_word",
    "true_suffix",
    "yolo_label_candidates",
]
