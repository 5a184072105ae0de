"""Pure rules of sync-from-disk (DESIGN.md "Start-up reconcile and recovery"): where a folder's
images belong, what ``data.yaml``, ``prompts.yaml``, ``ydc.json``, label files and a model's
``args.yaml`` / ``results.csv`` mean, and which of a folder's images may join its project.

Nothing here touches a disk or a database; the repository (``app.repositories.sync``) reads
the files, asks these rules, and writes rows.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.domain.errors import Invalid
from app.domain.models import Annotation
from app.domain.splits import DEFAULT_RATIOS, validate_ratios
from app.domain.validation import (
    validate_annotation,
    validate_class_name,
    validate_class_names,
    validate_colour,
)
from app.domain.yolo import data_yaml_dict, line_numbers

# Split folder names that exports use, and the split each means (Roboflow writes "valid").
SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
# Ultralytics writes the mAP at IoU 0.5 of the box head under this column of results.csv.
MAP50_COLUMN = "metrics/mAP50(B)"

Box = tuple[int, float, float, float, float]  # class position, x, y, w, h


# --- where images lie -----------------------------------------------------------------------


@dataclass(frozen=True)
class Home:
    """A folder of images: the split it stands for (``None``: no split, one is drawn) and the
    folder that holds its label files (both relative to the project folder, as parts)."""

    folder: tuple[str, ...]
    split: str | None
    labels: tuple[str, ...]

    @property
    def canonical(self) -> bool:
        """ydc's own layout: ``images/<split>/`` (files here stay where they are)."""
        return self.split is not None and self.folder == ("images", self.split)


def image_home(folder: tuple[str, ...]) -> Home | None:
    """The ``Home`` of an image folder of the layouts people copy in, or ``None``.

    ``images/<split>/`` (ydc, Ultralytics), ``<split>/images/`` (Roboflow; ``valid`` is val),
    and ``images/`` with no split folders.
    """
    if folder == ("images",):
        return Home(folder, None, ("labels",))
    if len(folder) != 2:
        return None
    first, second = folder
    if first == "images" and second in SPLIT_ALIASES:
        return Home(folder, SPLIT_ALIASES[second], ("labels", second))
    if second == "images" and first in SPLIT_ALIASES:
        return Home(folder, SPLIT_ALIASES[first], (first, "labels"))
    return None


def stem(filename: str) -> str:
    """``PurePosixPath(filename).stem`` of a bare file name, without building a path (it is
    asked for every file of a big folder)."""
    dot = filename.rfind(".")
    return filename[:dot] if 0 < dot < len(filename) - 1 else filename


def label_name(filename: str) -> str:
    """The label file of an image: its stem plus ``.txt`` (as Ultralytics looks it up)."""
    return stem(filename) + ".txt"


def stem_key(filename: str) -> str:
    """What must be unique per project: the stem, ignoring case (``a.jpg`` and ``A.png``
    would share ``a.txt``)."""
    return stem(filename).casefold()


# --- the project's own files ------------------------------------------------------------------


def class_names(raw: object, *, where: str = "data.yaml") -> list[str]:
    """The class names of a parsed ``data.yaml``: ``names`` as a list, or as a mapping of index
    to name (indices 0..n-1). Raises ``Invalid`` with the reason."""
    if not isinstance(raw, dict) or "names" not in raw:
        raise Invalid(f"{where} has no 'names' naming the classes.")
    names = raw["names"]
    if isinstance(names, list):
        listed = ["" if n is None else str(n) for n in names]
    elif isinstance(names, dict):
        try:
            indexed = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise Invalid(f"{where}: class indices in 'names' must be whole numbers.") from None
        if sorted(indexed) != list(range(len(indexed))):
            raise Invalid(f"{where}: class indices in 'names' must run 0..{len(indexed) - 1}.")
        listed = ["" if indexed[i] is None else str(indexed[i]) for i in range(len(indexed))]
    else:
        raise Invalid(f"{where}: 'names' must be a list or a mapping of index to name.")
    try:
        return validate_class_names(listed)
    except Invalid as error:
        raise Invalid(f"{where}: {error.message}") from None


def choose_classes(
    data_yaml: object | None, meta: ProjectMeta, *, has_label_files: bool
) -> list[str]:
    """The classes of a folder being adopted: from ``data.yaml``; without one, from ``ydc.json``;
    without either, none, unless label files name classes nobody can put a name to."""
    if data_yaml is not None:
        return class_names(data_yaml)
    if meta.class_names is not None:
        return meta.class_names
    if has_label_files:
        raise Invalid("It has label files but no data.yaml naming their classes.")
    return []


def is_ydc_data_yaml(raw: object, names: list[str]) -> bool:
    """Whether a parsed ``data.yaml`` says exactly what ydc's mirror would write."""
    return raw == data_yaml_dict(names)


@dataclass
class ProjectMeta:
    """What ``ydc.json`` adds to the YOLO files; defaults where it is absent or unusable."""

    description: str = ""
    ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    created_at: float | None = None
    class_names: list[str] | None = None
    colours: dict[str, str] = field(default_factory=dict)  # class name casefolded -> #rrggbb

    def colour(self, name: str) -> str | None:
        return self.colours.get(name.casefold())


def read_meta(raw: object) -> ProjectMeta:
    """A parsed ``ydc.json``, leniently: each part that is missing or malformed is left at its
    default (the YOLO files are what matter; this only keeps what they cannot hold)."""
    meta = ProjectMeta()
    if not isinstance(raw, dict):
        return meta
    if isinstance(raw.get("description"), str):
        meta.description = raw["description"]
    ratios = raw.get("split_ratios")
    if isinstance(ratios, dict):
        with contextlib.suppress(Invalid, TypeError, ValueError):
            meta.ratios = validate_ratios({k: float(v) for k, v in ratios.items()})
    created = raw.get("created_at")
    if isinstance(created, int | float) and not isinstance(created, bool) and created > 0:
        meta.created_at = float(created)
    classes = raw.get("classes")
    if isinstance(classes, list):
        names: list[str] = []
        for item in classes:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            names.append(item["name"])
            colour = item.get("colour")
            if isinstance(colour, str):
                with contextlib.suppress(Invalid):
                    meta.colours[item["name"].strip().casefold()] = validate_colour(colour)
        try:
            meta.class_names = validate_class_names(names)
        except Invalid:
            meta.class_names = None
    return meta


def read_prompts(raw: object, classes: list[str]) -> tuple[dict[int, list[str]], list[str]]:
    """The prompts of a parsed ``prompts.yaml`` (class position -> prompts), and the reasons
    for what was left out."""
    prompts: dict[int, list[str]] = {}
    problems: list[str] = []
    if raw is None:
        return prompts, problems
    if not isinstance(raw, dict):
        return prompts, ["prompts.yaml is not a mapping of class index to prompts"]
    for key, texts in raw.items():
        try:
            position = int(key)
        except (TypeError, ValueError):
            problems.append(f"prompts.yaml: {key!r} is not a class index")
            continue
        if not 0 <= position < len(classes):
            problems.append(
                f"prompts.yaml: class index {position} is out of range ({len(classes)} classes)"
            )
            continue
        if not isinstance(texts, list):
            problems.append(f"prompts.yaml: the prompts of class {position} are not a list")
            continue
        kept: list[str] = []
        for text in texts:
            try:
                kept.append(validate_class_name(text))
            except Invalid:
                problems.append(f"prompts.yaml: prompt {text!r} of class {position} is not text")
        if kept:
            prompts[position] = kept
    return prompts, problems


# --- label files ------------------------------------------------------------------------------


@dataclass
class LabelFile:
    """A label file read line by line: the boxes kept, and each line left out with why."""

    boxes: list[Box] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    polygons: int = 0  # lines that were polygons, kept as their bounding box

    @property
    def no_objects(self) -> bool:
        """An empty file (blank lines at most) means the image shows none of the classes."""
        return not self.boxes and not self.problems

    @property
    def lossy(self) -> bool:
        """Whether ydc's rewrite of the file would lose something the file says."""
        return bool(self.problems) or self.polygons > 0


def parse_label_file(text: str, *, num_classes: int, width: int, height: int) -> LabelFile:
    """Read YOLO lines ``class x y w h`` (or a polygon ``class x1 y1 x2 y2 …``, kept as its
    bounding box) against the project's classes and the image's upright size. A line that is
    not numbers, names an unknown class or a box outside the image is left out with its reason;
    the others are kept."""
    found = LabelFile()
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            box, polygon = _box(parts)
            x, y, w, h = box[1:]
            validate_annotation(
                Annotation(box[0], x, y, w, h),
                num_classes=num_classes,
                width=width,
                height=height,
            )
        except Invalid as error:
            found.problems.append((number, error.message))
            continue
        found.boxes.append(box)
        found.polygons += polygon
    return found


def _box(parts: list[str]) -> tuple[Box, bool]:
    """One line's box and whether it was a polygon; ``Invalid`` when it is neither."""
    class_id, values = line_numbers(parts)
    if len(values) == 4:
        return (class_id, *values), False  # type: ignore[return-value]
    if len(values) >= 6 and len(values) % 2 == 0:
        xs, ys = values[0::2], values[1::2]
        left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
        box = (class_id, (left + right) / 2, (top + bottom) / 2, right - left, bottom - top)
        return box, True
    raise Invalid(f"expected 'class x y width height', got {len(parts)} values")


# --- which images join the project ------------------------------------------------------------


class Admissions:
    """The names and contents a project holds, growing as files are admitted in order: a file
    whose stem is taken (ignoring case) or whose bytes are already there is refused."""

    def __init__(self, stems: dict[str, str], shas: dict[str, str]) -> None:
        # stem key -> where the holder lies; sha256 -> where the holder lies
        self._stems = dict(stems)
        self._shas = dict(shas)

    def refusal(self, filename: str, sha256: str) -> str | None:
        """Why the file cannot join, or ``None`` when it can."""
        twin = self._shas.get(sha256)
        if twin is not None:
            return f"duplicate of {twin} (the same bytes)"
        holder = self._stems.get(stem_key(filename))
        if holder is not None:
            return f"its name clashes with {holder} (file stems are unique, ignoring case)"
        return None

    def admit(self, filename: str, sha256: str, where: str) -> None:
        self._stems[stem_key(filename)] = where
        self._shas[sha256] = where


# --- models -----------------------------------------------------------------------------------


def pick_weights(names: Iterable[str]) -> str | None:
    """The weights of a model folder: ``best.pt``, else ``last.pt``, else its only ``.pt``."""
    weights = sorted(n for n in names if n.endswith(".pt"))
    for preferred in ("best.pt", "last.pt"):
        if preferred in weights:
            return preferred
    return weights[0] if len(weights) == 1 else None


@dataclass
class TrainingRecord:
    """What a model folder's ``args.yaml`` and ``results.csv`` say about its training."""

    base_model: str = "unknown"
    epochs_completed: int = 0
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_map50: float | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {"epochs": self.epochs}
        if self.best_map50 is not None:
            metrics["best_map50"] = self.best_map50
        return metrics


def read_training(args: object, results_csv: str | None) -> TrainingRecord:
    """Base model and epochs from a parsed ``args.yaml`` (``model``, ``epochs``); the epochs
    actually run, their metrics and the best mAP50 from ``results.csv`` when it is there."""
    record = TrainingRecord()
    if isinstance(args, dict):
        model = args.get("model")
        if isinstance(model, str) and model.strip():
            record.base_model = model.strip()[:255]
        epochs = args.get("epochs")
        if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0:
            record.epochs_completed = epochs
    if results_csv:
        rows = list(csv.DictReader(io.StringIO(results_csv)))
        for row in rows:
            values: dict[str, Any] = {}
            for key, value in row.items():
                if key is None or value is None:
                    continue
                number = _number(value)
                if number is not None:
                    values[key.strip()] = number
            if values:
                record.epochs.append(values)
        if record.epochs:
            # The epochs that ran, not the ones asked for (a run may stop early).
            record.epochs_completed = len(record.epochs)
        map50 = [e[MAP50_COLUMN] for e in record.epochs if MAP50_COLUMN in e]
        record.best_map50 = max(map50) if map50 else None
    return record


def _number(text: str) -> int | float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None  # JSON has no NaN
    return int(value) if value.is_integer() and "." not in text.strip() else value


__all__ = [
    "MAP50_COLUMN",
    "SPLIT_ALIASES",
    "Admissions",
    "Home",
    "LabelFile",
    "ProjectMeta",
    "TrainingRecord",
    "choose_classes",
    "class_names",
    "image_home",
    "is_ydc_data_yaml",
    "label_name",
    "parse_label_file",
    "pick_weights",
    "read_meta",
    "read_prompts",
    "read_training",
    "stem",
    "stem_key",
]
