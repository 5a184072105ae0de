"""The rules of auto-labelling, pure: which images a selection means, how a model's classes map
to the project's (by name), and which predictions become pending suggestions on an image.

A prediction is skipped when it overlaps an accepted box of the same class (IoU >= 0.7: the
image already has it) or matches a suggestion the user rejected (same class, IoU >= 0.7: they
said no once). Re-running a model replaces that model's pending suggestions on the image, so
nothing is duplicated; other models' suggestions stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from app.domain.errors import Invalid
from app.domain.evaluation import iou
from app.domain.models import SPLITS, ImageFilter, ImageState

OVERLAP_IOU = 0.7  # same class and at least this IoU: the same object
DEFAULT_CONFIDENCE = 0.25
DEFAULT_NMS_IOU = 0.7
DEFAULT_IMGSZ = 640
SELECTIONS = ("unlabelled", "all")  # and "split:<name>", "session:<id>", "filter:<query>"
FILTER_KEYS = ("split", "state", "class_id", "q", "session")  # the grid's, as its URL has them

# class, confidence, centre x, centre y, width, height (normalised)
Prediction = tuple[int, float, float, float, float, float]
Box = tuple[int, float, float, float, float]  # class, centre x, centre y, width, height


def name_key(name: str) -> str:
    """A class name as matched across model and project: case and spaces ignored."""
    return "".join(name.split()).casefold()


def map_classes(
    model_names: Mapping[int, str], project_names: Sequence[str]
) -> tuple[dict[int, int], list[str]]:
    """The model's class index → the project's class index for the names they share, and the
    model's names the project lacks (in the model's order)."""
    wanted = {name_key(name): index for index, name in enumerate(project_names)}
    mapping: dict[int, int] = {}
    unmatched: list[str] = []
    for index in sorted(model_names):
        found = wanted.get(name_key(model_names[index]))
        if found is None:
            unmatched.append(model_names[index])
        else:
            mapping[index] = found
    return mapping, unmatched


def selection_filter(selection: str) -> ImageFilter | None:
    """The image filter of a selection: ``unlabelled`` (images with no accepted box and no
    "no objects" mark), ``split:<name>``, ``session:<id>`` (a capture session's frames) or
    ``all`` (``None``). ``Invalid`` otherwise."""
    if selection == "unlabelled":
        return ImageFilter(state=ImageState.UNLABELLED)
    if selection == "all":
        return None
    if selection.startswith("split:"):
        split = selection.removeprefix("split:")
        if split in SPLITS:
            return ImageFilter(split=split)
        raise Invalid(f"{split!r} is not a split ({', '.join(SPLITS)}).")
    if selection.startswith("filter:"):
        return grid_filter(selection.removeprefix("filter:"))
    if selection.startswith("session:"):
        number = selection.removeprefix("session:")
        if number.isdigit() and 1 <= int(number) < 2**63:
            return ImageFilter(session_id=int(number))
        raise Invalid(f"{number!r} is not a capture session's number.")
    choices = ", ".join(
        [*SELECTIONS, *(f"split:{s}" for s in SPLITS), "session:<number>", "filter:<query>"]
    )
    raise Invalid(f"{selection!r} is not a selection of images ({choices}).")


def grid_filter(query: str) -> ImageFilter:
    """The image grid's filter from its URL's query string (``split=val&q=cat``…): the images
    a user sees in the grid. ``Invalid`` for a key or value the grid does not know."""
    try:
        pairs = parse_qsl(query, keep_blank_values=False, strict_parsing=bool(query))
    except ValueError:
        raise Invalid(f"{query!r} is not a filter of the image grid.") from None
    given: dict[str, str] = {}
    for key, value in pairs:
        if key not in FILTER_KEYS or key in given:
            raise Invalid(f"{key!r} is not a filter of the image grid, or is given twice.")
        given[key] = value.strip()
    split, state = given.get("split") or None, given.get("state") or None
    if split is not None and split not in SPLITS:
        raise Invalid(f"{split!r} is not a split ({', '.join(SPLITS)}).")
    if state is not None and state not in {s.value for s in ImageState}:
        raise Invalid(f"{state!r} is not a labelling state the grid filters on.")
    numbers: dict[str, int | None] = {}
    for key in ("class_id", "session"):
        text = given.get(key, "")
        if text and not (text.isdigit() and 1 <= int(text) < 2**63):
            raise Invalid(f"{text!r} is not a {key.replace('_', ' ')}.")
        numbers[key] = int(text) if text else None
    return ImageFilter(
        split=split,
        state=ImageState(state) if state else None,
        class_id=numbers["class_id"],
        name=given.get("q") or None,
        session_id=numbers["session"],
    )


def training_imgsz(metrics: Mapping[str, Any]) -> int:
    """The image size a model was trained at (``metrics["args"]["imgsz"]``), else 640."""
    args = metrics.get("args") if isinstance(metrics, Mapping) else None
    value = args.get("imgsz") if isinstance(args, Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, list | tuple) and value and isinstance(value[0], int | float):
        return int(max(value))
    return DEFAULT_IMGSZ


def image_size(value: Any, default: int) -> int:
    """The image size a run predicts at: ``value`` (a whole number from 32 to 4096), else
    ``default``. ``Invalid`` otherwise."""
    if value in (None, ""):
        return default
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise Invalid(f"The image size {value!r} is not a whole number.") from None
    if not 32 <= size <= 4096:
        raise Invalid(f"The image size must lie between 32 and 4096, not {size}.")
    return size


def fraction(value: Any, what: str, default: float) -> float:
    """A threshold in [0, 1] from a parameter (``default`` for ``None``); ``Invalid`` else."""
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"The {what} {value!r} is not a number.") from None
    if not 0.0 <= number <= 1.0:
        raise Invalid(f"The {what} must lie between 0 and 1, not {number:g}.")
    return number


@dataclass
class Screened:
    """What became of an image's predictions."""

    kept: list[Prediction] = field(default_factory=list)
    overlap_accepted: int = 0
    matches_rejected: int = 0
    below_confidence: int = 0


def _same_object(box: Prediction, others: Iterable[Box], threshold: float) -> bool:
    cls, _, x, y, w, h = box
    return any(
        c == cls and iou((x, y, w, h), (ox, oy, ow, oh)) >= threshold
        for c, ox, oy, ow, oh in others
    )


def screen(
    predictions: Iterable[Prediction],
    accepted: Sequence[Box],
    rejected: Sequence[Box],
    *,
    confidence: float = 0.0,
    overlap: float = OVERLAP_IOU,
) -> Screened:
    """The predictions (project class indices) that become suggestions on an image: those of
    at least ``confidence`` that neither overlap an ``accepted`` box of their class nor match a
    ``rejected`` suggestion of their class (IoU >= ``overlap``), each counted once, in the
    first rule it fails (confidence, then accepted, then rejected)."""
    out = Screened()
    for prediction in predictions:
        if prediction[1] < confidence:
            out.below_confidence += 1
        elif _same_object(prediction, accepted, overlap):
            out.overlap_accepted += 1
        elif _same_object(prediction, rejected, overlap):
            out.matches_rejected += 1
        else:
            out.kept.append(prediction)
    return out


def merge_same_class(predictions: Iterable[Prediction], threshold: float) -> list[Prediction]:
    """Predictions with one box per object and class: of boxes of one class overlapping at
    IoU >= ``threshold`` the most confident is kept. Several prompts of one class find the
    same object, each under its own prompt; the model's NMS never compares them."""
    kept: list[Prediction] = []
    boxes: list[Box] = []
    for prediction in sorted(predictions, key=lambda p: -p[1]):
        if not _same_object(prediction, boxes, threshold):
            cls, _, x, y, w, h = prediction
            kept.append(prediction)
            boxes.append((cls, x, y, w, h))
    return kept


def clip_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """A centre/size box clipped to the image ([0, 1] corners)."""
    x0, y0 = max(0.0, x - w / 2), max(0.0, y - h / 2)
    x1, y1 = min(1.0, x + w / 2), min(1.0, y + h / 2)
    return (x0 + x1) / 2, (y0 + y1) / 2, max(0.0, x1 - x0), max(0.0, y1 - y0)


__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_IMGSZ",
    "DEFAULT_NMS_IOU",
    "OVERLAP_IOU",
    "Box",
    "Prediction",
    "Screened",
    "clip_box",
    "fraction",
    "grid_filter",
    "image_size",
    "map_classes",
    "merge_same_class",
    "name_key",
    "screen",
    "selection_filter",
    "training_imgsz",
]
