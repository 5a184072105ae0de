"""Labels as the annotator and the review queue see them, and the rules for suggestions.

A suggestion is a label row with status ``pending``: it is no part of the mirror, the export or
the image's version until it is accepted (it becomes an ordinary accepted label, its source,
model and confidence kept) or rejected (kept for statistics, never exported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from app.domain.errors import Invalid
from app.domain.models import Annotation, ImageInfo, LabelSource
from app.domain.validation import validate_annotation
from app.domain.yolo import line_numbers

MAX_LINE_ERRORS = 200  # line errors listed in one message; the rest are counted


@dataclass
class ImageLabels:
    """One image with its accepted labels and its pending suggestions, each in id order."""

    image: ImageInfo
    labels: list[Annotation]
    suggestions: list[Annotation]


class SuggestionCount(NamedTuple):
    """How many suggestions, on how many images (what a bulk accept would take, or took)."""

    suggestions: int
    images: int


# Where a suggestion of unknown confidence sorts among confidences (after every known one).
UNKNOWN_CONFIDENCE_RANK = 2.0


class UncertainImage(NamedTuple):
    """An image in the review queue's least-confident-first order: its lowest pending
    confidence (``None`` when none of its suggestions has one) and how many it has."""

    image_id: int
    filename: str
    split: str
    lowest: float | None
    suggestions: int

    @property
    def rank(self) -> tuple[float, int]:
        """Its place in the order: (lowest confidence, unknown last; image id)."""
        low = UNKNOWN_CONFIDENCE_RANK if self.lowest is None else self.lowest
        return (low, self.image_id)


def validate_min_confidence(value: float) -> float:
    """A confidence threshold in [0, 1]; ``Invalid`` otherwise (NaN included)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise Invalid(f"Confidence threshold {value!r} is not between 0 and 1.")
    return float(value)


def validate_confidence(confidence: float | None) -> None:
    """A label's confidence is unknown (``None``) or a number in [0, 1]."""
    if confidence is None:
        return
    if (
        not isinstance(confidence, int | float)
        or isinstance(confidence, bool)
        or not math.isfinite(confidence)
        or not 0 <= confidence <= 1
    ):
        raise Invalid(f"Confidence {confidence!r} is not between 0 and 1.")


def validate_source(source: str) -> None:
    if source not in LabelSource.__members__.values():
        raise Invalid(f"Label source {source!r} is not one of {', '.join(LabelSource)}.")


def parse_suggestion_lines(
    text: str, *, num_classes: int, width: int, height: int, where: str = "line"
) -> list[Annotation]:
    """Suggestions from YOLO lines ``class x y width height [confidence]`` (source ``import``).

    Blank lines are skipped. Every bad line (not numbers, the wrong number of values, a class
    out of range, a box outside the image or under one pixel, a confidence outside [0, 1]) is
    reported in one ``Invalid`` naming its line number, so a file is refused whole.
    """
    found: list[Annotation] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            found.append(_suggestion(parts, num_classes=num_classes, width=width, height=height))
        except Invalid as error:
            errors.append(f"{where} {number}: {error.message}")
    if errors:
        shown = errors[:MAX_LINE_ERRORS]
        more = len(errors) - len(shown)
        tail = f"; and {more} more bad line{'s' if more != 1 else ''}" if more else ""
        raise Invalid(
            f"{len(errors)} bad line{'s' if len(errors) != 1 else ''}, nothing was imported: "
            + "; ".join(shown)
            + tail
        )
    return found


def _suggestion(parts: list[str], *, num_classes: int, width: int, height: int) -> Annotation:
    if len(parts) not in (5, 6):
        raise Invalid(f"expected 'class x y width height [confidence]', got {len(parts)} values")
    class_id, values = line_numbers(parts)
    x, y, w, h = values[:4]
    confidence = values[4] if len(values) == 5 else None
    validate_confidence(confidence)
    ann = Annotation(class_id, x, y, w, h, source=LabelSource.IMPORT.value, confidence=confidence)
    validate_annotation(ann, num_classes=num_classes, width=width, height=height)
    if w <= 0 or h <= 0:
        raise Invalid("width and height must be positive")
    return ann
