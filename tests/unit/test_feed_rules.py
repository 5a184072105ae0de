"""Stream feeds' pure rules: which sources the admin allows, the reconnect back-off, the ring
buffer of recent frames, the gates that bound rates, the settings a person types, the state a
page shows, and URLs shown without their password."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.errors import Forbidden, Invalid
from app.domain.feeds import (
    BACKOFF_MAX_S,
    DEFAULT_FEED_SCHEMES,
    RING_BYTES,
    FeedSettings,
    FeedSource,
    FpsMeter,
    FrameRing,
    RateGate,
    backoff_s,
    check_source,
    feed_frame_filename,
    page_state,
    parse_schemes,
    redact_url,
)


def test_a_url_of_an_allowed_scheme_is_accepted_whatever_its_case() -> None:
    assert check_source(" rtsp://cam.local:554/live ", DEFAULT_FEED_SCHEMES) == FeedSource(
        url="rtsp://cam.local:554/live"
    )
    assert check_source("HTTP://10.0.0.5/video.mjpg", DEFAULT_FEED_SCHEMES).url == (
        "HTTP://10.0.0.5/video.mjpg"
    )
    assert check_source("https://[::1]:8443/s", ["https"]).url == "https://[::1]:8443/s"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:/etc/shadow",
        "concat:a.mp4|b.mp4",
        "udp://0.0.0.0:1234",
        "subfile:,,start,0,end,0,,:/etc/passwd",
        "device:0",
    ],
)
def test_a_scheme_the_admin_does_not_allow_is_forbidden_with_the_setting_named(url: str) -> None:
    with pytest.raises(Forbidden, match="YDC_FEED_SCHEMES") as refused:
        check_source(url, DEFAULT_FEED_SCHEMES)
    assert refused.value.status == 403
    assert "rtsp:" in str(refused.value)


def test_a_camera_index_needs_device_in_the_allowed_schemes() -> None:
    with pytest.raises(Forbidden, match="'device'"):
        check_source("0", DEFAULT_FEED_SCHEMES)
    assert check_source("2", [*DEFAULT_FEED_SCHEMES, "device"]) == FeedSource(device=2)
    with pytest.raises(Invalid, match="0 to 63"):
        check_source("64", ["device"])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "Give the stream"),
        ("   ", "Give the stream"),
        ("camera.local/stream", "not a stream URL"),
        ("http:///path-only", "names no host"),
        ("http://host:port/x", "not a well-formed URL"),
        ("rtsp://cam/a b", "spaces or control"),
        ("http://" + "a" * 3000, "longer than"),
    ],
)
def test_what_is_no_stream_url_is_invalid(text: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason) as refused:
        check_source(text, DEFAULT_FEED_SCHEMES)
    assert refused.value.status == 422


def test_the_allowed_schemes_setting_is_read_as_comma_separated_lower_case() -> None:
    assert parse_schemes(" RTSP, http ,,device") == ("rtsp", "http", "device")
    assert parse_schemes(["https", "HTTPS"]) == ("https",)


def test_the_back_off_doubles_from_one_second_up_to_thirty() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_s(10_000) == BACKOFF_MAX_S
    assert backoff_s(0) == 0.0


def test_the_ring_keeps_the_last_frames_and_finds_the_one_nearest_a_moment() -> None:
    ring: FrameRing[str] = FrameRing(3)
    assert ring.latest() is None and ring.nearest(5.0) is None
    for index, at in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        assert ring.push(f"f{index}", at) == index + 1
    assert len(ring) == 3 and ring.pushed == 5
    latest = ring.latest()
    assert latest is not None and (latest.seq, latest.frame) == (5, "f4")
    assert [ring.nearest(t).frame for t in (0.0, 3.2, 3.5, 3.6, 4.9, 99.0)] == [  # type: ignore[union-attr]
        "f2",  # the oldest left: the earlier ones dropped out
        "f2",
        "f3",  # a tie goes to the later frame
        "f3",
        "f4",
        "f4",
    ]
    with pytest.raises(ValueError):
        FrameRing(0)


def test_a_rate_gate_lets_through_at_most_rate_times_a_second() -> None:
    gate = RateGate(2.0)  # every 0.5 s
    passed = [t / 10 for t in range(0, 30) if gate.take(t / 10)]
    assert passed == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    slow = RateGate(0.25)
    assert slow.take(100.0) and not slow.ready(103.9) and slow.ready(104.0)
    with pytest.raises(ValueError):
        RateGate(0)


def test_a_rate_gate_says_how_long_until_it_opens() -> None:
    gate = RateGate(4.0)  # every 0.25 s
    assert gate.wait_s(10.0) == 0.0  # never taken: open
    gate.mark(10.0)
    assert gate.wait_s(10.1) == pytest.approx(0.15)
    assert gate.wait_s(10.25) == 0.0 and gate.wait_s(11.0) == 0.0


def test_the_fps_meter_counts_ticks_over_its_window() -> None:
    meter = FpsMeter(window=2.0)
    assert meter.rate(0.0) == 0.0
    for i in range(41):
        meter.tick(i * 0.05)  # 20 a second for 2 s
    assert meter.rate(2.0) == pytest.approx(20.0)
    assert meter.rate(10.0) == 0.0  # nothing for a while


def test_feed_settings_from_the_form_with_defaults_and_refusals() -> None:
    chosen = FeedSettings.from_form("rtsp://cam/s")
    assert chosen.every_seconds is None and chosen.near_duplicate_bits == 6
    assert chosen.split is None and not chosen.live
    assert (chosen.live_rate, chosen.imgsz) == (2.0, 320)
    full = FeedSettings.from_form(
        "http://cam/v.mjpg",
        every_seconds="0.5",
        near_duplicate_bits="0",
        split="val",
        live="on",
        live_rate="5",
        imgsz="128",
    )
    assert FeedSettings.from_dict(full.to_dict()) == full
    assert "every 0.5 s" in full.describe() and "live view" in full.describe()
    assert "manual captures only" in chosen.describe()
    for field, value, reason in [
        ("every_seconds", "0.01", "Capture every T seconds"),
        ("every_seconds", "soon", "not a number"),
        ("live_rate", "100", "rate must be"),
        ("imgsz", "300", "multiple of 32"),
        ("imgsz", "big", "not a whole number"),
        ("split", "holdout", "split must be"),
    ]:
        with pytest.raises(Invalid, match=reason):
            FeedSettings.from_form("rtsp://cam/s", **{field: value})


def test_the_page_state_says_waiting_stalled_or_ended_beside_what_the_worker_published() -> None:
    assert page_state(None, now=100.0, in_progress=True) == "waiting"
    assert page_state({"state": "live", "updated_at": 99.0}, now=100.0, in_progress=True) == "live"
    stale = {"state": "live", "updated_at": 50.0}
    assert page_state(stale, now=100.0, in_progress=True) == "stalled"
    assert page_state(stale, now=100.0, in_progress=False) == "ended"


def test_a_url_is_shown_without_its_password() -> None:
    assert (
        redact_url("rtsp://admin:s3cret@cam.local:554/live")
        == "rtsp://admin:***@cam.local:554/live"
    )
    assert redact_url("http://cam/v.mjpg") == "http://cam/v.mjpg"
    assert "s3cret" not in FeedSource(url="rtsp://u:s3cret@cam/").describe()
    assert FeedSource(device=0).describe() == "camera 0 of the server"


def test_a_url_is_shown_without_the_values_of_its_query_string() -> None:
    assert (
        redact_url("rtsp://cam.local/live?user=admin&password=s3cret&channel=1&audio")
        == "rtsp://cam.local/live?user=***&password=***&channel=***&audio"
    )
    assert (
        redact_url("https://u:pw@cam/mjpg?token=abc%20def#top")
        == "https://u:***@cam/mjpg?token=***#top"
    )
    assert "abc" not in FeedSource(url="http://cam/v.mjpg?token=abc").describe()


def test_the_ring_holds_at_most_its_bytes_of_frames_but_always_two() -> None:
    frame = np.zeros((1080, 1920, 3), np.uint8)  # 6.2 MB
    ring: FrameRing[np.ndarray] = FrameRing(64, max_bytes=8 * frame.nbytes)
    for index in range(20):
        ring.push(frame.copy(), float(index))
    assert len(ring) == 8 and ring.nbytes == 8 * frame.nbytes and ring.pushed == 20
    assert [ring.nearest(float(t)).seq for t in (0, 19)] == [13, 20]  # type: ignore[union-attr]
    assert FrameRing().max_bytes == RING_BYTES <= 128 * 1024**2
    huge: FrameRing[np.ndarray] = FrameRing(64, max_bytes=frame.nbytes // 2)
    for index in range(5):
        huge.push(frame, float(index))
    assert len(huge) == 2  # a frame bigger than the budget: still the newest two


def test_captured_frames_are_named_after_the_session_and_their_number() -> None:
    assert feed_frame_filename(7, 12) == "stream7-00012.jpg"
