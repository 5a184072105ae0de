"""The pure rules of auto-labelling: class mapping by name, the selection's filter, the
training image size, and which predictions become suggestions."""

from __future__ import annotations

import pytest

from app.domain.autolabel import (
    clip_box,
    fraction,
    map_classes,
    screen,
    selection_filter,
    training_imgsz,
)
from app.domain.errors import Invalid
from app.domain.models import ImageFilter, ImageState


def test_model_classes_map_to_project_classes_by_name_ignoring_case_and_spaces() -> None:
    mapping, unmatched = map_classes(
        {0: "Traffic Light", 1: "dog", 2: "cat"}, ["cat", "trafficlight", "bird"]
    )
    assert mapping == {0: 1, 2: 0}
    assert unmatched == ["dog"]


def test_selections_name_their_filters_and_a_bad_one_is_refused() -> None:
    assert selection_filter("unlabelled") == ImageFilter(state=ImageState.UNLABELLED)
    assert selection_filter("all") is None
    assert selection_filter("split:val") == ImageFilter(split="val")
    assert selection_filter("session:12") == ImageFilter(session_id=12)
    with pytest.raises(Invalid):
        selection_filter("split:nowhere")
    with pytest.raises(Invalid):
        selection_filter("session:-1")


def test_a_grid_filter_selects_what_the_grid_shows_and_nothing_it_does_not_know() -> None:
    assert selection_filter("filter:split=val&state=unlabelled&q=cat&class_id=4") == ImageFilter(
        split="val", state=ImageState.UNLABELLED, class_id=4, name="cat"
    )
    assert selection_filter("filter:session=3") == ImageFilter(session_id=3)
    assert selection_filter("filter:") == ImageFilter()
    for bad in ["split=nowhere", "state=odd", "class_id=x", "order=uncertain", "q=a&q=b", "%%"]:
        with pytest.raises(Invalid):
            selection_filter(f"filter:{bad}")
    with pytest.raises(Invalid):
        selection_filter("everything")


def test_the_image_size_is_the_models_training_one_else_640() -> None:
    assert training_imgsz({"args": {"imgsz": 128}}) == 128
    assert training_imgsz({"args": {}}) == 640
    assert training_imgsz({}) == 640


def test_thresholds_lie_between_zero_and_one() -> None:
    assert fraction(None, "confidence", 0.25) == 0.25
    assert fraction("0.5", "confidence", 0.25) == 0.5
    with pytest.raises(Invalid):
        fraction(1.5, "confidence", 0.25)
    with pytest.raises(Invalid):
        fraction("high", "confidence", 0.25)


def test_a_prediction_over_an_accepted_box_of_its_class_is_skipped() -> None:
    accepted = [(0, 0.5, 0.5, 0.2, 0.2)]
    same = (0, 0.9, 0.5, 0.5, 0.2, 0.2)
    near = (0, 0.9, 0.51, 0.5, 0.2, 0.2)  # IoU ~0.9
    other_class = (1, 0.9, 0.5, 0.5, 0.2, 0.2)
    elsewhere = (0, 0.9, 0.1, 0.1, 0.1, 0.1)
    out = screen([same, near, other_class, elsewhere], accepted, [])
    assert out.kept == [other_class, elsewhere]
    assert out.overlap_accepted == 2


def test_a_prediction_matching_a_rejected_suggestion_is_not_resurrected() -> None:
    rejected = [(1, 0.3, 0.3, 0.2, 0.2)]
    again = (1, 0.8, 0.3, 0.3, 0.2, 0.2)
    loose = (1, 0.8, 0.35, 0.3, 0.2, 0.2)  # IoU 0.6: another object
    out = screen([again, loose], [], rejected)
    assert out.kept == [loose]
    assert out.matches_rejected == 1


def test_predictions_under_the_confidence_are_counted_and_dropped() -> None:
    out = screen(
        [(0, 0.1, 0.5, 0.5, 0.2, 0.2), (0, 0.3, 0.2, 0.2, 0.1, 0.1)], [], [], confidence=0.25
    )
    assert [p[1] for p in out.kept] == [0.3]
    assert out.below_confidence == 1


def test_a_box_reaching_past_the_edge_is_clipped_to_the_image() -> None:
    x, y, w, h = clip_box(0.95, 0.5, 0.2, 0.2)
    assert x + w / 2 == pytest.approx(1.0)
    assert w == pytest.approx(0.15)
    assert (y, h) == pytest.approx((0.5, 0.2))
