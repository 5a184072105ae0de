"""The YOLO label text format, pure: format and parse lines, build ``data.yaml`` contents."""

from __future__ import annotations

import math
from typing import Any

from app.domain.errors import Invalid
from app.domain.models import Annotation


def format_label_lines(rows: list[tuple[int, float, float, float, float]]) -> str:
    """``class x y w h`` per line, six decimals, newline-terminated (empty string for none)."""
    return "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in rows)


def line_numbers(parts: list[str]) -> tuple[int, list[float]]:
    """The class index and the finite numbers of a split YOLO line; ``Invalid`` saying which
    part is wrong (the caller adds where)."""
    try:
        class_id = int(parts[0])
    except ValueError:
        raise Invalid(f"class {parts[0]!r} is not a whole number") from None
    try:
        values = [float(p) for p in parts[1:]]
    except ValueError:
        raise Invalid(f"{' '.join(parts[1:])!r} is not numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise Invalid("a value is not a finite number")
    return class_id, values


def parse_label_text(text: str, *, where: str = "label file") -> list[Annotation]:
    """Parse YOLO detection lines. Polygon lines (class + 2n points) become their bounding box.

    Blank lines are skipped; anything else malformed raises ``Invalid`` naming the line.
    """
    annotations: list[Annotation] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            class_id = int(parts[0])
            values = [float(p) for p in parts[1:]]
        except ValueError:
            raise Invalid(f"{where}, line {number}: {raw.strip()!r} is not numbers.") from None
        if len(values) == 4:
            x, y, w, h = values
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
            x, y, w, h = (left + right) / 2, (top + bottom) / 2, right - left, bottom - top
        else:
            raise Invalid(
                f"{where}, line {number}: expected 'class x y width height', "
                f"got {len(parts)} values."
            )
        annotations.append(Annotation(class_id, x, y, w, h))
    return annotations


def data_yaml_dict(classes: list[str]) -> dict[str, Any]:
    """The mirror's ``data.yaml``: no ``path`` key, so splits resolve against the YAML's folder."""
    return {
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "nc": len(classes),
        "names": dict(enumerate(classes)),
    }
