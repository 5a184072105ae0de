"""The webcam's pure rules: only interval captures may be skipped, the settings a person types,
and the frames' names."""

from __future__ import annotations

import pytest

from app.domain.capture import (
    DEFAULT_NEAR_DUPLICATE_BITS,
    FrameMode,
    WebcamSettings,
    frame_mode,
    may_skip,
    webcam_frame_filename,
)
from app.domain.errors import Invalid


def test_only_an_interval_capture_may_be_skipped_and_not_with_a_threshold_of_0() -> None:
    assert not may_skip(FrameMode.MANUAL, 6)
    assert not may_skip(FrameMode.MANUAL, 32)
    assert may_skip(FrameMode.INTERVAL, 6)
    assert not may_skip(FrameMode.INTERVAL, 0)


def test_the_mode_is_manual_or_interval() -> None:
    assert frame_mode(" Interval ") is FrameMode.INTERVAL
    assert frame_mode("manual") is FrameMode.MANUAL
    with pytest.raises(Invalid, match="manual or interval"):
        frame_mode("burst")


def test_webcam_settings_from_a_form_and_back() -> None:
    blank = WebcamSettings.from_form()
    assert blank == WebcamSettings(DEFAULT_NEAR_DUPLICATE_BITS, None, False)
    chosen = WebcamSettings.from_form(near_duplicate_bits="3", split="val", autolabel="on")
    assert chosen.to_dict() == {"near_duplicate_bits": 3, "split": "val", "autolabel": True}
    assert WebcamSettings.from_dict(chosen.to_dict()) == chosen
    assert WebcamSettings.from_dict(blank.to_dict()) == blank
    assert blank.to_dict()["split"] == "drawn"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"near_duplicate_bits": "40"}, "0 to 32 bits"),
        ({"near_duplicate_bits": "many"}, "not a whole number"),
        ({"split": "holdout"}, "split must be one of"),
    ],
)
def test_webcam_settings_refuse_what_cannot_be_used(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        WebcamSettings.from_form(**fields)


def test_webcam_frames_are_named_by_session_and_number() -> None:
    assert webcam_frame_filename(7, 12) == "webcam7-00012.jpg"
