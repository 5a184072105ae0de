"""The pure capture rules: which frames are sampled, which are skipped as near-duplicates, and
the settings a person types."""

from __future__ import annotations

import pytest

from app.domain.capture import (
    DEFAULT_NEAR_DUPLICATE_BITS,
    CaptureSettings,
    check_video_name,
    frame_filename,
    frame_step,
    is_near_duplicate,
    sampled_indices,
)
from app.domain.errors import Invalid


def test_every_n_frames_samples_the_first_frame_and_every_nth_after_it() -> None:
    step = frame_step(CaptureSettings(every_n=3), fps=25.0)
    assert sampled_indices(10, step) == [0, 3, 6, 9]
    assert sampled_indices(5, frame_step(CaptureSettings(every_n=1), fps=None)) == [0, 1, 2, 3, 4]


def test_every_t_seconds_samples_the_first_frame_at_or_after_each_multiple() -> None:
    settings = CaptureSettings(every_n=None, every_seconds=0.5)
    assert sampled_indices(31, frame_step(settings, fps=10.0)) == [0, 5, 10, 15, 20, 25, 30]
    # 0.1 s at 30 fps is 3.0000000000000004 frames: still every third frame, never one late.
    tenth = CaptureSettings(every_n=None, every_seconds=0.1)
    assert sampled_indices(10, frame_step(tenth, fps=30.0)) == [0, 3, 6, 9]
    # A fractional step: the first frame at or after 0, 2.5, 5, 7.5.
    assert sampled_indices(9, 2.5) == [0, 3, 5, 8]
    # Shorter than a frame: every frame.
    fast = CaptureSettings(every_n=None, every_seconds=0.01)
    assert frame_step(fast, fps=25.0) == 1.0


def test_every_t_seconds_needs_the_frame_rate() -> None:
    settings = CaptureSettings(every_n=None, every_seconds=1.0)
    for fps in (None, 0.0, float("nan")):
        with pytest.raises(Invalid, match="frame rate"):
            frame_step(settings, fps)


def test_a_frame_within_the_threshold_of_the_last_kept_one_is_skipped() -> None:
    assert not is_near_duplicate(None, 6)  # nothing kept yet
    assert is_near_duplicate(0, 6)
    assert is_near_duplicate(6, 6)
    assert not is_near_duplicate(7, 6)
    assert not is_near_duplicate(0, 0)  # 0 keeps every sampled frame


def test_settings_from_a_form_take_defaults_and_refuse_nonsense() -> None:
    blank = CaptureSettings.from_form()
    assert (blank.every_n, blank.every_seconds, blank.split) == (1, None, None)
    assert blank.near_duplicate_bits == DEFAULT_NEAR_DUPLICATE_BITS
    timed = CaptureSettings.from_form(every_seconds="2.5", near_duplicate_bits="0", split="val")
    assert (timed.every_n, timed.every_seconds, timed.near_duplicate_bits) == (None, 2.5, 0)
    assert CaptureSettings.from_dict(timed.to_dict()) == timed
    assert CaptureSettings.from_dict(blank.to_dict()) == blank
    bad = [
        {"every_n": "2", "every_seconds": "1"},
        {"every_n": "0"},
        {"every_n": "two"},
        {"every_seconds": "-1"},
        {"every_seconds": "inf"},
        {"near_duplicate_bits": "40"},
        {"split": "holdout"},
    ]
    for fields in bad:
        with pytest.raises(Invalid):
            CaptureSettings.from_form(**fields)


def test_only_video_names_are_accepted_and_frames_are_named_after_the_video() -> None:
    for name in ("clip.mp4", "A.AVI", "x.mov", "y.mkv", "z.webm"):
        assert check_video_name(name) == name
    for name in ("notes.txt", "clip", "image.jpg"):
        with pytest.raises(Invalid, match="not a video"):
            check_video_name(name)
    assert frame_filename("street cam.mp4", 42) == "street cam-f42.jpg"
