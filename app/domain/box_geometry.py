"""Where boxes go when pixels move: resizing, tiling, flips and rotations, pure.

A dataset version transforms images and must move their boxes with the pixels exactly. The
worker applies these same numbers to the pixels (the rotation matrix, the tile rectangles, the
padding), so boxes and pixels cannot drift apart. Boxes are YOLO rows, normalised centre and
size; the helpers work in pixels of a continuous plane (0..width, 0..height), where pixel
``i`` covers ``[i, i + 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import Invalid

# A box narrower or lower than this (pixels) after clipping is a sliver, not an object.
MIN_SIDE_PX = 1.0


@dataclass(frozen=True)
class Box:
    """A box in pixels: corners ``(x1, y1)`` top left and ``(x2, y2)`` bottom right."""

    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


@dataclass(frozen=True)
class YoloBox:
    """A YOLO row: class index, normalised centre and size."""

    class_id: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Rect:
    """A rectangle of whole pixels in an image: a tile, or where a resized image lands."""

    left: int
    top: int
    width: int
    height: int


class ResizeMode(StrEnum):
    STRETCH = "stretch"  # to size x size, aspect ratio not kept
    FIT_PAD = "fit_pad"  # scaled to fit size x size, centred, the rest padded
    FIT_LONG = "fit_long"  # the long side scaled to size, the other in proportion


def to_pixels(box: YoloBox, width: int, height: int) -> Box:
    half_w, half_h = box.width * width / 2, box.height * height / 2
    cx, cy = box.x * width, box.y * height
    return Box(box.class_id, cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def to_yolo(box: Box, width: int, height: int) -> YoloBox:
    return YoloBox(
        box.class_id,
        (box.x1 + box.x2) / 2 / width,
        (box.y1 + box.y2) / 2 / height,
        (box.x2 - box.x1) / width,
        (box.y2 - box.y1) / height,
    )


def clip(box: Box, width: float, height: float) -> Box:
    return Box(
        box.class_id,
        min(max(box.x1, 0.0), width),
        min(max(box.y1, 0.0), height),
        min(max(box.x2, 0.0), width),
        min(max(box.y2, 0.0), height),
    )


# --- resizing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResizePlan:
    """What a resize does: the scaled image's size, and where it sits on the output canvas
    (``canvas`` = the output's size; larger than ``scaled`` only when padding)."""

    scaled_width: int
    scaled_height: int
    canvas_width: int
    canvas_height: int
    left: int  # padding before the scaled image
    top: int


def plan_resize(width: int, height: int, size: int, mode: ResizeMode) -> ResizePlan:
    if width <= 0 or height <= 0 or size <= 0:
        raise Invalid("A resize needs a positive image size and target size.")
    if mode is ResizeMode.STRETCH:
        return ResizePlan(size, size, size, size, 0, 0)
    scale = size / max(width, height)
    scaled_w = max(1, round(width * scale))
    scaled_h = max(1, round(height * scale))
    if mode is ResizeMode.FIT_LONG:
        return ResizePlan(scaled_w, scaled_h, scaled_w, scaled_h, 0, 0)
    return ResizePlan(
        scaled_w, scaled_h, size, size, (size - scaled_w) // 2, (size - scaled_h) // 2
    )


def resize_boxes(boxes: list[YoloBox], width: int, height: int, plan: ResizePlan) -> list[YoloBox]:
    """The boxes on the resized canvas. The scale is the one the pixels get (the rounded scaled
    size over the original), so a box follows its pixels to the rounding of the image."""
    sx, sy = plan.scaled_width / width, plan.scaled_height / height
    moved = []
    for box in boxes:
        px = to_pixels(box, width, height)
        scaled = Box(
            box.class_id,
            px.x1 * sx + plan.left,
            px.y1 * sy + plan.top,
            px.x2 * sx + plan.left,
            px.y2 * sy + plan.top,
        )
        moved.append(to_yolo(scaled, plan.canvas_width, plan.canvas_height))
    return moved


# --- tiling ------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Where tiles start along one side: every ``tile x (1 - overlap)`` pixels, the last one
    flush with the edge (never padded). A side no longer than a tile is one tile."""
    if tile <= 0:
        raise Invalid("The tile size must be a positive number of pixels.")
    if not 0 <= overlap < 1:
        raise Invalid("The tile overlap must be at least 0 and less than 1.")
    if length <= tile:
        return [0]
    stride = max(1, round(tile * (1 - overlap)))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def plan_tiles(width: int, height: int, tile: int, overlap: float) -> list[Rect]:
    """The tiles of an image, row by row: each ``tile`` square (or the whole side when the
    image is smaller than a tile that way)."""
    tile_w, tile_h = min(tile, width), min(tile, height)
    return [
        Rect(left, top, tile_w, tile_h)
        for top in tile_starts(height, tile, overlap)
        for left in tile_starts(width, tile, overlap)
    ]


def boxes_in_tile(
    boxes: list[YoloBox], width: int, height: int, tile: Rect, min_visible: float
) -> list[YoloBox]:
    """Each box clipped to ``tile``, in the tile's normalised coordinates, kept only when at
    least ``min_visible`` of its area remains (and it is not thinner than a pixel)."""
    if not 0 < min_visible <= 1:
        raise Invalid("The share of a box a tile must keep is more than 0 and at most 1.")
    kept = []
    for box in boxes:
        px = to_pixels(box, width, height)
        if px.area <= 0:
            continue
        inside = Box(
            box.class_id,
            max(px.x1, tile.left),
            max(px.y1, tile.top),
            min(px.x2, tile.left + tile.width),
            min(px.y2, tile.top + tile.height),
        )
        if inside.x2 - inside.x1 < MIN_SIDE_PX or inside.y2 - inside.y1 < MIN_SIDE_PX:
            continue
        # A hair under the share from float rounding still counts as the share.
        if inside.area < min_visible * px.area * (1 - 1e-9):
            continue
        local = Box(
            box.class_id,
            inside.x1 - tile.left,
            inside.y1 - tile.top,
            inside.x2 - tile.left,
            inside.y2 - tile.top,
        )
        kept.append(to_yolo(local, tile.width, tile.height))
    return kept


# --- flips and rotations -------------------------------------------------------------------


def flip_horizontal(boxes: list[YoloBox]) -> list[YoloBox]:
    return [YoloBox(b.class_id, 1 - b.x, b.y, b.width, b.height) for b in boxes]


def flip_vertical(boxes: list[YoloBox]) -> list[YoloBox]:
    return [YoloBox(b.class_id, b.x, 1 - b.y, b.width, b.height) for b in boxes]


def rotate90_clockwise(boxes: list[YoloBox], turns: int) -> list[YoloBox]:
    """Boxes of an image turned ``turns`` quarter turns clockwise (``cv2.ROTATE_90_CLOCKWISE``
    once per turn): a point ``(x, y)`` of the normalised plane goes to ``(1 - y, x)``."""
    rotated = list(boxes)
    for _ in range(turns % 4):
        rotated = [YoloBox(b.class_id, 1 - b.y, b.x, b.height, b.width) for b in rotated]
    return rotated


def rotation_matrix(degrees: float, width: int, height: int) -> tuple[tuple[float, ...], ...]:
    """The 2x3 affine matrix of a rotation by ``degrees`` counter-clockwise (as seen on screen)
    about the image centre, on the continuous plane boxes live on (the centre is
    ``(width / 2, height / 2)`` there)."""
    return _rotation(degrees, width / 2, height / 2)


def pixel_rotation_matrix(degrees: float, width: int, height: int) -> tuple[tuple[float, ...], ...]:
    """The same rotation for ``cv2.warpAffine``, which works on pixel indices: pixel ``i``'s
    centre is ``i + 0.5`` on the continuous plane, so the centre is ``((w - 1) / 2, (h - 1) / 2)``
    (``cv2.getRotationMatrix2D`` with that centre). With ``(w / 2, h / 2)`` there the pixels
    would sit half a pixel off their boxes."""
    return _rotation(degrees, (width - 1) / 2, (height - 1) / 2)


def _rotation(degrees: float, cx: float, cy: float) -> tuple[tuple[float, ...], ...]:
    alpha = math.cos(math.radians(degrees))
    beta = math.sin(math.radians(degrees))
    return (
        (alpha, beta, (1 - alpha) * cx - beta * cy),
        (-beta, alpha, beta * cx + (1 - alpha) * cy),
    )


def rotate_boxes(boxes: list[YoloBox], degrees: float, width: int, height: int) -> list[YoloBox]:
    """Boxes of an image rotated by ``degrees`` on a canvas of the same size: each box's four
    corners are rotated, the quadrilateral is cut to the canvas, and the box becomes the
    smallest upright box around what is left (dropped when nothing is). Cutting before taking
    the bounds matters at the edges: corners that left the canvas would widen the box."""
    (a, b, c), (d, e, f) = rotation_matrix(degrees, width, height)
    moved = []
    for box in boxes:
        px = to_pixels(box, width, height)
        corners = [(px.x1, px.y1), (px.x2, px.y1), (px.x2, px.y2), (px.x1, px.y2)]
        turned = [(a * x + b * y + c, d * x + e * y + f) for x, y in corners]
        inside = clip_polygon(turned, width, height)
        if not inside:
            continue
        xs, ys = [x for x, _ in inside], [y for _, y in inside]
        around = Box(box.class_id, min(xs), min(ys), max(xs), max(ys))
        if around.x2 - around.x1 < MIN_SIDE_PX or around.y2 - around.y1 < MIN_SIDE_PX:
            continue
        moved.append(to_yolo(around, width, height))
    return moved


Point = tuple[float, float]


def clip_polygon(points: list[Point], width: float, height: float) -> list[Point]:
    """The part of a convex polygon inside ``0 <= x <= width, 0 <= y <= height``
    (Sutherland-Hodgman, one edge of the canvas at a time); empty when none is."""
    edges = (
        (lambda p: p[0] >= 0, lambda p, q: _at_x(p, q, 0.0)),
        (lambda p: p[0] <= width, lambda p, q: _at_x(p, q, width)),
        (lambda p: p[1] >= 0, lambda p, q: _at_y(p, q, 0.0)),
        (lambda p: p[1] <= height, lambda p, q: _at_y(p, q, height)),
    )
    for inside, cross in edges:
        if not points:
            break
        kept: list[Point] = []
        for i, current in enumerate(points):
            previous = points[i - 1]
            if inside(current):
                if not inside(previous):
                    kept.append(cross(previous, current))
                kept.append(current)
            elif inside(previous):
                kept.append(cross(previous, current))
        points = kept
    return points


def _at_x(p: Point, q: Point, x: float) -> Point:
    t = (x - p[0]) / (q[0] - p[0])
    return x, p[1] + t * (q[1] - p[1])


def _at_y(p: Point, q: Point, y: float) -> Point:
    t = (y - p[1]) / (q[1] - p[1])
    return p[0] + t * (q[0] - p[0]), y
