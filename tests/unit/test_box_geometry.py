"""Boxes follow their pixels through resizing, tiling, flips and rotations, with the exact
coordinates worked out by hand, and checked against what OpenCV does to real pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.domain.box_geometry import (
    Box,
    Rect,
    ResizeMode,
    YoloBox,
    boxes_in_tile,
    clip_polygon,
    flip_horizontal,
    flip_vertical,
    pixel_rotation_matrix,
    plan_resize,
    plan_tiles,
    resize_boxes,
    rotate90_clockwise,
    rotate_boxes,
    rotation_matrix,
    tile_starts,
    to_pixels,
    to_yolo,
)
from app.domain.errors import Invalid

W, H = 4000, 3000


def yolo(class_id: int, x1: float, y1: float, x2: float, y2: float, w: int, h: int) -> YoloBox:
    return to_yolo(Box(class_id, x1, y1, x2, y2), w, h)


def assert_pixels(box: YoloBox, w: int, h: int, expected: tuple[float, float, float, float]):
    px = to_pixels(box, w, h)
    assert (px.x1, px.y1, px.x2, px.y2) == pytest.approx(expected, abs=1e-9)


# --- tiling --------------------------------------------------------------------------------


def test_tiles_step_by_the_stride_and_the_last_sits_flush_with_the_edge():
    # 640 px tiles, 20 % overlap: stride 512.
    assert tile_starts(W, 640, 0.2) == [0, 512, 1024, 1536, 2048, 2560, 3072, 3360]
    assert tile_starts(H, 640, 0.2) == [0, 512, 1024, 1536, 2048, 2360]
    tiles = plan_tiles(W, H, 640, 0.2)
    assert len(tiles) == 8 * 6
    assert tiles[0] == Rect(0, 0, 640, 640)
    assert tiles[-1] == Rect(3360, 2360, 640, 640)
    assert all(t.left + t.width <= W and t.top + t.height <= H for t in tiles)


def test_a_side_that_fits_in_a_tile_is_one_tile_of_its_own_length():
    assert tile_starts(500, 640, 0.2) == [0]
    assert tile_starts(640, 640, 0.2) == [0]
    assert plan_tiles(500, 1000, 640, 0.5) == [
        Rect(0, 0, 500, 640),
        Rect(0, 320, 500, 640),
        Rect(0, 360, 500, 640),
    ]


def test_a_side_a_whole_number_of_strides_long_needs_no_extra_tile():
    assert tile_starts(1152, 640, 0.2) == [0, 512]


@pytest.mark.parametrize(("tile", "overlap"), [(0, 0.2), (640, 1.0), (640, -0.1)])
def test_impossible_tilings_are_refused(tile: int, overlap: float):
    with pytest.raises(Invalid):
        tile_starts(W, tile, overlap)


def tiles_holding(boxes: list[YoloBox], min_visible: float = 0.4) -> dict[tuple[int, int], list]:
    found = {}
    for tile in plan_tiles(W, H, 640, 0.2):
        inside = boxes_in_tile(boxes, W, H, tile, min_visible)
        if inside:
            found[(tile.left, tile.top)] = inside
    return found


def test_a_box_inside_one_tile_lands_there_at_the_right_coordinates():
    found = tiles_holding([yolo(0, 100, 100, 300, 200, W, H)])
    assert list(found) == [(0, 0)]
    (box,) = found[(0, 0)]
    assert box.class_id == 0
    assert (box.x, box.y, box.width, box.height) == pytest.approx(
        (200 / 640, 150 / 640, 200 / 640, 100 / 640), abs=1e-12
    )


def test_a_box_in_the_overlap_is_whole_in_both_tiles():
    found = tiles_holding([yolo(1, 520, 100, 620, 200, W, H)])
    assert sorted(found) == [(0, 0), (512, 0)]
    assert_pixels(found[(0, 0)][0], 640, 640, (520, 100, 620, 200))
    assert_pixels(found[(512, 0)][0], 640, 640, (8, 100, 108, 200))


def test_a_sliver_below_the_share_is_dropped_and_the_rest_is_clipped():
    # x 610..710: 30 px of 100 in the first tile (30 % < 40 %), whole in the second.
    found = tiles_holding([yolo(2, 610, 100, 710, 200, W, H)])
    assert list(found) == [(512, 0)]
    assert_pixels(found[(512, 0)][0], 640, 640, (98, 100, 198, 200))


def test_a_box_cut_by_a_tile_edge_keeps_its_clipped_part_at_the_share_or_above():
    # x 1100..1200 against columns 512..1152 (52 of 100 px) and 1024..1664 (whole); y
    # 2000..2100 against rows 1536..2176 (whole) and 2048..2688 (52 of 100 px). The share is
    # of the area: the tile at (512, 2048) keeps 52 % x 52 % = 27 % and drops it.
    found = tiles_holding([yolo(3, 1100, 2000, 1200, 2100, W, H)])
    assert sorted(found) == [(512, 1536), (1024, 1536), (1024, 2048)]
    assert_pixels(found[(512, 1536)][0], 640, 640, (588, 464, 640, 564))
    assert_pixels(found[(1024, 2048)][0], 640, 640, (76, 0, 176, 52))
    # At exactly the share the box stays: 40 px of 100 (x 600..700 in the first tile).
    exactly = tiles_holding([yolo(4, 600, 100, 700, 200, W, H)])
    assert sorted(exactly) == [(0, 0), (512, 0)]
    assert_pixels(exactly[(0, 0)][0], 640, 640, (600, 100, 640, 200))


def test_a_box_in_the_bottom_right_corner_lands_in_the_flush_tile():
    found = tiles_holding([yolo(5, 3900, 2900, 3990, 2990, W, H)])
    assert list(found) == [(3360, 2360)]
    assert_pixels(found[(3360, 2360)][0], 640, 640, (540, 540, 630, 630))


def test_the_share_must_be_a_share():
    with pytest.raises(Invalid):
        boxes_in_tile([], W, H, Rect(0, 0, 640, 640), 0)


# --- resizing --------------------------------------------------------------------------------


def test_fit_with_padding_centres_the_image_and_moves_boxes_with_it():
    plan = plan_resize(W, H, 640, ResizeMode.FIT_PAD)
    assert (plan.scaled_width, plan.scaled_height, plan.left, plan.top) == (640, 480, 0, 80)
    (box,) = resize_boxes([yolo(0, 100, 100, 300, 200, W, H)], W, H, plan)
    assert_pixels(box, 640, 640, (16, 96, 48, 112))


def test_fit_long_side_and_stretch_keep_normalised_boxes():
    box = yolo(0, 100, 100, 300, 200, W, H)
    long_side = plan_resize(W, H, 640, ResizeMode.FIT_LONG)
    assert (long_side.canvas_width, long_side.canvas_height) == (640, 480)
    stretch = plan_resize(W, H, 640, ResizeMode.STRETCH)
    assert (stretch.canvas_width, stretch.canvas_height) == (640, 640)
    for plan in (long_side, stretch):
        (moved,) = resize_boxes([box], W, H, plan)
        assert (moved.x, moved.y, moved.width, moved.height) == pytest.approx(
            (box.x, box.y, box.width, box.height), abs=1e-12
        )


# --- flips and rotations ------------------------------------------------------------------


def painted(w: int, h: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A black image with the pixels of ``box`` (x1, y1, x2, y2, end exclusive) white."""
    image = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return image


def white_extent(image: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(image > 127)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def test_a_quarter_turn_maps_the_box_exactly_as_opencv_turns_the_pixels():
    w, h = 400, 200
    box = yolo(7, 40, 20, 120, 60, w, h)
    (turned,) = rotate90_clockwise([box], 1)
    assert (turned.x, turned.y, turned.width, turned.height) == pytest.approx(
        (0.8, 0.2, 0.2, 0.2), abs=1e-12
    )
    assert turned.class_id == 7
    for turns, code in (
        (1, cv2.ROTATE_90_CLOCKWISE),
        (2, cv2.ROTATE_180),
        (3, cv2.ROTATE_90_COUNTERCLOCKWISE),
    ):
        pixels = cv2.rotate(painted(w, h, (40, 20, 120, 60)), code)
        out_h, out_w = pixels.shape
        (moved,) = rotate90_clockwise([box], turns)
        assert_pixels(moved, out_w, out_h, white_extent(pixels))
    assert rotate90_clockwise([box], 4) == [box]


def test_flips_map_the_box_exactly_as_opencv_flips_the_pixels():
    w, h = 400, 200
    box = yolo(0, 40, 20, 120, 60, w, h)
    (flipped,) = flip_horizontal([box])
    assert_pixels(flipped, w, h, (280, 20, 360, 60))
    assert_pixels(flipped, w, h, white_extent(cv2.flip(painted(w, h, (40, 20, 120, 60)), 1)))
    (flipped,) = flip_vertical([box])
    assert_pixels(flipped, w, h, (40, 140, 120, 180))
    assert_pixels(flipped, w, h, white_extent(cv2.flip(painted(w, h, (40, 20, 120, 60)), 0)))


def test_the_pixel_rotation_matrix_is_opencvs_about_the_centre_of_the_pixels():
    ours = np.array(pixel_rotation_matrix(10, 640, 480))
    theirs = cv2.getRotationMatrix2D((319.5, 239.5), 10, 1.0)
    assert ours == pytest.approx(theirs, abs=1e-12)
    # On the continuous plane boxes use, the centre is (w / 2, h / 2): the same rotation.
    (a, b, c), (d, e, f) = rotation_matrix(10, 640, 480)
    assert (a * 320 + b * 240 + c, d * 320 + e * 240 + f) == pytest.approx((320, 240))


def test_a_quarter_turn_by_warp_lands_exactly_on_the_rotated_box():
    # Whole pixels map onto whole pixels at 90 degrees: the white pixels must fill the box
    # exactly (half a pixel off would show as one pixel off here).
    w = h = 200
    box = yolo(0, 40, 20, 120, 60, w, h)
    pixels = cv2.warpAffine(
        painted(w, h, (40, 20, 120, 60)), np.array(pixel_rotation_matrix(90, w, h)), (w, h)
    )
    (moved,) = rotate_boxes([box], 90, w, h)
    assert_pixels(moved, w, h, white_extent(pixels))


def test_a_small_rotation_gives_a_box_around_the_rotated_corners():
    w, h = 640, 480
    x1, y1, x2, y2 = 200.0, 150.0, 360.0, 270.0
    (rotated,) = rotate_boxes([yolo(3, x1, y1, x2, y2, w, h)], 10, w, h)
    around = to_pixels(rotated, w, h)
    corners = np.array([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]])
    moved = cv2.transform(corners, np.array(rotation_matrix(10, w, h)))[0]
    for x, y in moved:
        assert around.x1 - 1e-9 <= x <= around.x2 + 1e-9
        assert around.y1 - 1e-9 <= y <= around.y2 + 1e-9
    # ...and is the smallest such box: each side touches a corner.
    assert around.x1 == pytest.approx(moved[:, 0].min())
    assert around.x2 == pytest.approx(moved[:, 0].max())
    assert around.y1 == pytest.approx(moved[:, 1].min())
    assert around.y2 == pytest.approx(moved[:, 1].max())
    # The pixels rotated by OpenCV with the same matrix stay inside the box.
    pixels = cv2.warpAffine(
        painted(w, h, (200, 150, 360, 270)), np.array(pixel_rotation_matrix(10, w, h)), (w, h)
    )
    ex1, ey1, ex2, ey2 = white_extent(pixels)
    assert around.x1 - 1 <= ex1 and ex2 <= around.x2 + 1
    assert around.y1 - 1 <= ey1 and ey2 <= around.y2 + 1


@pytest.mark.parametrize(
    ("w", "h", "rect", "degrees"),
    [
        (640, 480, (0, 0, 100, 100), -20),  # a corner box: part of it turns off the canvas
        (200, 100, (80, 0, 120, 20), 45),  # at the top edge
        (640, 480, (500, 380, 640, 480), 15),
    ],
)
def test_a_box_turned_partly_off_the_canvas_fits_what_is_left_of_it(w, h, rect, degrees):
    (rotated,) = rotate_boxes([yolo(0, *rect, w, h)], degrees, w, h)
    around = to_pixels(rotated, w, h)
    pixels = cv2.warpAffine(
        painted(w, h, rect), np.array(pixel_rotation_matrix(degrees, w, h)), (w, h)
    )
    ex1, ey1, ex2, ey2 = white_extent(pixels)
    # Holds every pixel that stayed (1 px of interpolation) and no more than that: a box
    # around corners that left the canvas would be far wider.
    assert around.x1 - 1 <= ex1 and ex2 <= around.x2 + 1
    assert around.y1 - 1 <= ey1 and ey2 <= around.y2 + 1
    assert ex1 - around.x1 <= 1.5 and around.x2 - ex2 <= 1.5
    assert ey1 - around.y1 <= 1.5 and around.y2 - ey2 <= 1.5


def test_a_polygon_is_cut_to_the_canvas():
    cut = clip_polygon([(-10, -10), (10, -10), (10, 10), (-10, 10)], 100, 100)
    assert sorted(cut) == [(0, 0), (0, 10), (10, 0), (10, 10)]
    assert clip_polygon([(200, 200), (210, 200), (210, 210)], 100, 100) == []


def test_a_rotated_box_is_dropped_when_it_leaves_the_canvas():
    # On a flat canvas a box at the left end turns out below the bottom edge.
    assert rotate_boxes([yolo(0, 0, 90, 10, 110, 640, 200)], 30, 640, 200) == []
