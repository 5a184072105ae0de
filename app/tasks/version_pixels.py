"""The pixels of a dataset version: preprocessing and augmentation of one decoded image, with
its boxes moved by ``app.domain.box_geometry`` using the same numbers (matrix, tiles, padding).

Everything here is deterministic for a given input and step: the noise comes from the step's
own seed, so the same recipe writes the same bytes again.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.domain.box_geometry import (
    Rect,
    ResizeMode,
    YoloBox,
    boxes_in_tile,
    flip_horizontal,
    flip_vertical,
    pixel_rotation_matrix,
    plan_resize,
    plan_tiles,
    resize_boxes,
    rotate90_clockwise,
    rotate_boxes,
)
from app.domain.versions import AugmentationStep, Preprocessing

QUARTER_TURNS = {
    1: cv2.ROTATE_90_CLOCKWISE,
    2: cv2.ROTATE_180,
    3: cv2.ROTATE_90_COUNTERCLOCKWISE,
}
PAD_VALUE = 114  # the grey Ultralytics letterboxes with
MIN_BLUR_SIGMA = 0.1  # below it a Gaussian changes no pixel


@dataclass
class Piece:
    """One output image: pixels (BGR) and its boxes; ``suffix`` names the tile it came from."""

    image: np.ndarray
    boxes: list[YoloBox]
    suffix: str = ""


def preprocess(image: np.ndarray, boxes: list[YoloBox], pre: Preprocessing) -> list[Piece]:
    """Tile (when asked), then resize each piece (when asked); drop pieces without boxes when
    asked. The image is already upright (decoding applies EXIF orientation)."""
    height, width = image.shape[:2]
    pieces = [Piece(image, boxes)]
    if pre.tile is not None and (width > pre.tile or height > pre.tile):
        pieces = [
            Piece(
                _crop(image, tile),
                boxes_in_tile(boxes, width, height, tile, pre.tile_min_visible),
                f"_t{tile.left}x{tile.top}",
            )
            for tile in plan_tiles(width, height, pre.tile, pre.tile_overlap)
        ]
    if pre.resize is not None:
        pieces = [_resized(piece, pre.resize, pre.resize_mode) for piece in pieces]
    if pre.drop_empty:
        pieces = [piece for piece in pieces if piece.boxes]
    return pieces


def _crop(image: np.ndarray, tile: Rect) -> np.ndarray:
    return image[tile.top : tile.top + tile.height, tile.left : tile.left + tile.width].copy()


def _resized(piece: Piece, size: int, mode: ResizeMode) -> Piece:
    height, width = piece.image.shape[:2]
    plan = plan_resize(width, height, size, mode)
    shrinking = plan.scaled_width * plan.scaled_height < width * height
    scaled = cv2.resize(
        piece.image,
        (plan.scaled_width, plan.scaled_height),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    if (plan.canvas_width, plan.canvas_height) != (plan.scaled_width, plan.scaled_height):
        canvas = np.full(
            (plan.canvas_height, plan.canvas_width, *scaled.shape[2:]), PAD_VALUE, scaled.dtype
        )
        canvas[
            plan.top : plan.top + plan.scaled_height, plan.left : plan.left + plan.scaled_width
        ] = scaled
        scaled = canvas
    return Piece(scaled, resize_boxes(piece.boxes, width, height, plan), piece.suffix)


def augment(image: np.ndarray, boxes: list[YoloBox], step: AugmentationStep) -> Piece:
    """One augmented copy: geometry first (boxes follow), then the pixel-only changes."""
    if step.quarter_turns % 4:
        image = cv2.rotate(image, QUARTER_TURNS[step.quarter_turns % 4])
        boxes = rotate90_clockwise(boxes, step.quarter_turns)
    if step.flip_horizontal:
        image = cv2.flip(image, 1)
        boxes = flip_horizontal(boxes)
    if step.flip_vertical:
        image = cv2.flip(image, 0)
        boxes = flip_vertical(boxes)
    if step.degrees:
        height, width = image.shape[:2]
        matrix = np.array(pixel_rotation_matrix(step.degrees, width, height))
        image = cv2.warpAffine(
            image,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
        )
        boxes = rotate_boxes(boxes, step.degrees, width, height)
    if step.brightness or step.contrast != 1.0:
        # Contrast around mid-grey, then brightness: a function of the value alone, so one
        # 256-entry table (worked out in float, rounded, clipped) does every pixel.
        levels = (np.arange(256, dtype=np.float32) - 127.5) * step.contrast + 127.5
        table = np.clip(np.rint(levels + step.brightness), 0, 255).astype(np.uint8)
        image = cv2.LUT(image, table)
    if step.blur_sigma >= MIN_BLUR_SIGMA:
        image = cv2.GaussianBlur(image, (0, 0), step.blur_sigma)
    if step.noise_std > 0:
        # OpenCV's generator, seeded from the step just before drawing: its state is the
        # calling thread's own, so the same step draws the same noise on any thread. A
        # saturating add (no wrap-around). Five times quicker than numpy's float64 normals.
        noise = np.empty(image.shape, np.int16)
        cv2.setRNGSeed(step.noise_seed % 2**31)
        cv2.randn(noise, 0.0, step.noise_std)  # type: ignore[call-overload]
        image = cv2.add(image, noise, dtype=cv2.CV_8U)
    if step.grayscale:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        image = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)  # YOLO wants three channels
    return Piece(np.ascontiguousarray(image), boxes)
