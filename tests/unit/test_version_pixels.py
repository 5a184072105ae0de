"""The pixels of a version move with their boxes: white rectangles painted where the boxes are
end up where the moved boxes say, through tiling, resizing and every augmentation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from app.domain.box_geometry import Box, YoloBox, to_pixels, to_yolo
from app.domain.versions import AugmentationStep, Preprocessing, plan_augmentation, validate_recipe
from app.tasks.version_pixels import augment, preprocess


def scene(w: int, h: int, rects: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, list]:
    image = np.zeros((h, w, 3), np.uint8)
    boxes = []
    for n, (x1, y1, x2, y2) in enumerate(rects):
        image[y1:y2, x1:x2] = 255
        boxes.append(to_yolo(Box(n, x1, y1, x2, y2), w, h))
    return image, boxes


def white_extent(image: np.ndarray, box: YoloBox) -> tuple[float, float, float, float]:
    """The bright pixels near ``box`` (within a margin), as a pixel box."""
    h, w = image.shape[:2]
    px = to_pixels(box, w, h)
    x1, y1 = max(0, int(px.x1) - 8), max(0, int(px.y1) - 8)
    x2, y2 = min(w, int(px.x2) + 8), min(h, int(px.y2) + 8)
    grey = image[y1:y2, x1:x2].mean(axis=2)
    ys, xs = np.nonzero(grey > 127)
    return x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1.0, y1 + ys.max() + 1.0


def assert_follows(image: np.ndarray, box: YoloBox, tolerance: float) -> None:
    h, w = image.shape[:2]
    px = to_pixels(box, w, h)
    assert white_extent(image, box) == pytest.approx(
        (px.x1, px.y1, px.x2, px.y2), abs=max(tolerance, 1e-6)
    )


def test_tiles_carry_their_part_of_the_pixels_and_boxes():
    image, boxes = scene(1500, 1000, [(100, 100, 300, 200), (1300, 800, 1450, 950)])
    pieces = preprocess(image, boxes, Preprocessing(tile=640, tile_overlap=0.2))
    assert [p.suffix for p in pieces][:2] == ["_t0x0", "_t512x0"]
    assert all(p.image.shape[:2] == (640, 640) for p in pieces)
    holding = [p for p in pieces if p.boxes]
    assert {p.suffix for p in holding} == {"_t0x0", "_t860x360"}
    for piece in holding:
        for box in piece.boxes:
            assert_follows(piece.image, box, 0)


def test_resize_with_padding_moves_boxes_with_the_pixels():
    image, boxes = scene(800, 400, [(100, 100, 300, 200)])
    (piece,) = preprocess(image, boxes, Preprocessing(resize=400))
    assert piece.image.shape[:2] == (400, 400)
    assert piece.image[0, 0, 0] == 114  # padded
    assert_follows(piece.image, piece.boxes[0], 1)


def test_drop_empty_leaves_out_tiles_without_boxes():
    image, boxes = scene(1500, 1000, [(100, 100, 300, 200)])
    pieces = preprocess(image, boxes, Preprocessing(tile=640, drop_empty=True))
    assert [p.suffix for p in pieces] == ["_t0x0"]


@pytest.mark.parametrize(
    ("step", "tolerance"),
    [
        (AugmentationStep(quarter_turns=1), 0),
        (AugmentationStep(quarter_turns=3, flip_horizontal=True), 0),
        (AugmentationStep(flip_vertical=True), 0),
        (AugmentationStep(brightness=-40, contrast=1.2, noise_std=5, noise_seed=7), 0),
        (AugmentationStep(grayscale=True, blur_sigma=0.8), 2),
    ],
)
def test_augmentation_moves_boxes_with_the_pixels(step, tolerance):
    image, boxes = scene(640, 480, [(100, 60, 260, 200), (400, 300, 600, 460)])
    piece = augment(image, boxes, step)
    for box in piece.boxes:
        assert_follows(piece.image, box, tolerance)


def test_a_small_rotation_gives_boxes_around_the_rotated_rectangle():
    image, boxes = scene(640, 480, [(200, 150, 360, 270)])
    piece = augment(image, boxes, AugmentationStep(degrees=10))
    x1, y1, x2, y2 = white_extent(piece.image, piece.boxes[0])
    px = to_pixels(piece.boxes[0], 640, 480)
    # The box holds every rotated pixel (1 px of interpolation) and is no more than that.
    assert px.x1 - 1 <= x1 and x2 <= px.x2 + 1 and px.y1 - 1 <= y1 and y2 <= px.y2 + 1
    assert (x2 - x1) == pytest.approx(px.x2 - px.x1, abs=2)


def test_the_same_recipe_writes_the_same_bytes():
    recipe = validate_recipe(
        {
            "augmentation": {
                "outputs": 3,
                "flip_horizontal": True,
                "rotation": 12,
                "brightness": 0.3,
                "blur": 2,
                "noise": 10,
                "grayscale": 0.5,
            },
            "seed": 5,
        }
    )
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [YoloBox(0, 0.5, 0.5, 0.25, 0.25)]

    def build() -> list[str]:
        return [
            hashlib.sha256(
                augment(image, boxes, plan_augmentation(recipe, "img", k)).image.tobytes()
            ).hexdigest()
            for k in range(3)
        ]

    first = build()
    assert first == build()
    assert len(set(first)) == 3
