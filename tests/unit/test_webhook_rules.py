"""The pure webhook rules: URL check, signature, back-off, the payload."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from app.config import Settings
from app.domain.errors import Invalid
from app.domain.models import TaskInfo
from app.domain.webhooks import (
    RETRY_MAX_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_schedule,
    build_payload,
    encode_body,
    event_name,
    mask_secret,
    new_secret,
    next_attempt_at,
    result_summary,
    retry_delay,
    signature,
    signed_headers,
    validate_webhook_url,
    verify_signature,
)
from app.services.notifications import SendPolicy


def _task(**changes: object) -> TaskInfo:
    values: dict[str, object] = {
        "id": 7,
        "kind": "export",
        "status": "succeeded",
        "progress": 1.0,
        "message": "done",
        "params": {"splits": ["train"]},
        "result": {"images": 3, "labels": 5, "filename": "birds.zip", "left_out": {"x": 1}},
        "error": None,
        "attempts": 1,
        "max_attempts": 3,
        "cancel_requested": False,
        "worker": "w",
        "heartbeat_at": 12.0,
        "created_at": 10.0,
        "started_at": 11.0,
        "finished_at": 12.5,
        "dataset": "birds",
    }
    values.update(changes)
    return TaskInfo(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/hook", "https://example.org/a?b=c", "  HTTPS://Example.org  "],
)
def test_http_and_https_urls_are_taken_trimmed(url: str) -> None:
    assert validate_webhook_url(url) == url.strip()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("", "Give the webhook's URL"),
        ("ftp://example.org/x", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("example.org/hook", "must start with http:// or https://"),
        ("http:///nohost", "no host"),
        ("http://exa mple.org/", "spaces"),
        ("http://example.org:99999/", "not a valid URL"),
        ("http://example.org/#frag", "fragment"),
        ("https://example.org/" + "a" * 2000, "at most 2000"),
        ("http://example.org/höök", "plain ASCII"),  # http.client cannot send it
        ("http://bücher.example/hook", "xn--"),
        ("https://user:pass@example.org/hook", "user name or password"),  # never sent
        ("https://token@example.org/hook", "user name or password"),
    ],
)
def test_other_urls_are_refused_with_the_reason(url: str, said: str) -> None:
    with pytest.raises(Invalid, match=said) as caught:
        validate_webhook_url(url)
    assert caught.value.status == 422


def test_the_signature_is_the_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()

    assert signature("s3cret", 1700000000, body) == "sha256=" + expected


def test_a_receiver_accepts_a_fresh_signed_body_and_refuses_tampering_and_replays() -> None:
    body = b'{"event":"task.succeeded"}'
    header = signature("k", 1000, body)

    assert verify_signature("k", "1000", body, header, now=1010)
    assert not verify_signature("k", "1000", body + b" ", header, now=1010)  # body changed
    assert not verify_signature("other", "1000", body, header, now=1010)  # wrong secret
    assert not verify_signature("k", "1001", body, header, now=1010)  # timestamp changed
    assert not verify_signature("k", "1000", body, header, now=1000 + 301)  # too old: replay
    assert not verify_signature("k", "soon", body, header, now=1000)


def test_a_signature_header_with_non_ascii_characters_is_refused_not_an_error() -> None:
    body = b"{}"

    assert not verify_signature("k", "1000", body, "sha256=é" + "0" * 63, now=1000)
    assert not verify_signature("k", "1000", body, "ü", now=1000)


def test_signed_headers_carry_the_timestamp_they_sign() -> None:
    headers = signed_headers("k", b"{}", timestamp=42, event="task.failed", delivery_id=9)

    assert headers[TIMESTAMP_HEADER] == "42"
    assert headers[SIGNATURE_HEADER] == signature("k", 42, b"{}")
    assert headers["X-Ydc-Event"] == "task.failed"
    assert headers["X-Ydc-Delivery"] == "9"
    assert headers["Content-Type"] == "application/json"


def test_the_back_off_doubles_from_its_base() -> None:
    assert backoff_schedule(5, 1.0) == [1.0, 2.0, 4.0, 8.0]
    assert backoff_schedule(3, 0.1) == pytest.approx([0.1, 0.2])
    assert retry_delay(1, 1.0) == 1.0
    assert retry_delay(4, 0.5) == 4.0


def test_each_wait_is_capped_at_an_hour() -> None:
    assert retry_delay(50, 1.0) == RETRY_MAX_S == 3600.0
    assert retry_delay(10_000, 10.0) == RETRY_MAX_S  # no overflow either
    assert backoff_schedule(11, 10.0)[-3:] == [1280.0, 2560.0, 3600.0]
    assert next_attempt_at(49, max_attempts=50, base_s=1.0, now=0.0) == 3600.0


def test_the_default_retries_outlast_a_receiver_restarting_for_minutes() -> None:
    for attempts, base_s in [
        (SendPolicy().attempts, SendPolicy().backoff_s),
        (
            Settings.model_fields["webhook_attempts"].default,
            Settings.model_fields["webhook_backoff_s"].default,
        ),
    ]:
        waits = backoff_schedule(attempts, base_s)
        assert waits[0] >= 10 and sum(waits) >= 20 * 60


def test_after_the_last_attempt_there_is_no_next_one() -> None:
    assert next_attempt_at(1, max_attempts=5, base_s=1.0, now=100.0) == 101.0
    assert next_attempt_at(4, max_attempts=5, base_s=1.0, now=100.0) == 108.0
    assert next_attempt_at(5, max_attempts=5, base_s=1.0, now=100.0) is None
    assert next_attempt_at(6, max_attempts=5, base_s=1.0, now=100.0) is None


def test_secrets_are_random_and_masked_to_their_last_four_characters() -> None:
    one, two = new_secret(), new_secret()

    assert one != two and one.startswith("whsec_") and len(one) == len("whsec_") + 48
    assert mask_secret(one) == "whsec_…" + one[-4:]
    assert one[6:-4] not in mask_secret(one)


def test_events_are_named_after_the_final_status() -> None:
    assert event_name("succeeded") == "task.succeeded"
    assert event_name("cancelled") == "task.cancelled"
    with pytest.raises(Invalid):
        event_name("running")


def test_the_payload_has_the_event_the_task_its_times_and_a_link() -> None:
    payload = build_payload(_task(), delivery_id=3, task_url="http://ydc.lan/tasks/7")

    assert payload == {
        "event": "task.succeeded",
        "delivery": 3,
        "task": {
            "id": 7,
            "kind": "export",
            "status": "succeeded",
            "project": "birds",
            "created_at": 10.0,
            "started_at": 11.0,
            "finished_at": 12.5,
            "attempts": 1,
            "message": "done",
            "error": None,
            "result": {"images": 3, "labels": 5, "filename": "birds.zip", "left_out": {"x": 1}},
            "url": "http://ydc.lan/tasks/7",
        },
    }


def test_the_body_is_compact_sorted_utf8_json() -> None:
    body = encode_body({"b": "é", "a": [1, 2]})

    assert body == '{"a":[1,2],"b":"é"}'.encode()
    assert json.loads(body) == {"a": [1, 2], "b": "é"}


def test_the_result_summary_keeps_scalars_and_flat_counts_and_drops_the_rest() -> None:
    result = {
        "map50": 0.5,
        "model": "birds-3",
        "per_split": {"train": 8, "val": 2},
        "confusion": [[1, 2], [3, 4]],
        "classes": {"gull": {"ap50": 0.4}},
        "log": "x" * 500,
    }

    summary = result_summary(result)

    assert summary["map50"] == 0.5 and summary["model"] == "birds-3"
    assert summary["per_split"] == {"train": 8, "val": 2}
    assert "confusion" not in summary and "classes" not in summary
    assert len(summary["log"]) == 200 and summary["log"].endswith("…")
    assert result_summary(None) == {}
    assert len(result_summary({f"k{i}": i for i in range(50)})) == 20
