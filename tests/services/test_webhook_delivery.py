"""Webhook deliveries end to end below the web layer: a task ends, the sender POSTs to a real
receiver on 127.0.0.1, signed; failures are retried with back-off, then given up."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time

from app.domain.stores import Stores
from app.domain.webhooks import Delivery
from app.services import notifications as notify_service
from app.services.notifications import Answer, SendPolicy, deliver_due
from app.tasks.webhook_sender import WebhookSender
from tests.webhook_receiver import webhook_receiver

FAST = SendPolicy(attempts=5, backoff_s=0.2, timeout_s=5.0, base_url="http://ydc.test:8000")


async def _project_with_webhook(stores: Stores, url: str) -> str:
    await stores.dataset.create("birds", ["gull"])
    _, secret = await notify_service.set_webhook(stores, "birds", url)
    assert secret is not None
    return secret


async def _end_a_task(stores: Stores, status: str = "succeeded", **finish: object) -> int:
    task = await stores.task.enqueue("export", {"splits": ["train"]}, dataset="birds")
    assert (await stores.task.claim("w")) is not None
    await stores.task.finish(task.id, "w", status=status, **finish)  # type: ignore[arg-type]
    return task.id


async def _send_until(
    stores: Stores, policy: SendPolicy, done: set[str], timeout_s: float = 30
) -> Delivery:
    """Run the sender's ticks until the (only) delivery reaches a state in ``done``."""
    deadline = time.monotonic() + timeout_s
    while True:
        await deliver_due(stores, "test-sender", policy)
        [found] = await stores.notification.deliveries()
        if found.state in done or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


async def test_a_finished_tasks_post_arrives_signed_with_the_documented_body(
    stores: Stores,
) -> None:
    with webhook_receiver(204) as receiver:
        secret = await _project_with_webhook(stores, receiver.url)
        task_id = await _end_a_task(stores, result={"images": 4, "labels": 9, "filename": "b.zip"})

        found = await _send_until(stores, FAST, {"delivered", "failed"})
        [request] = await receiver.arrived(1)

    assert (found.state, found.attempts, found.last_status) == ("delivered", 1, 204)
    headers = {k.lower(): v for k, v in request.headers.items()}
    stamp = headers["x-ydc-timestamp"]
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
    assert headers["x-ydc-signature"] == "sha256=" + expected.hexdigest()
    assert abs(int(stamp) - time.time()) < 60
    assert headers["content-type"] == "application/json"
    assert headers["x-ydc-event"] == "task.succeeded"
    assert headers["x-ydc-delivery"] == str(found.id)
    assert request.path == "/hook"
    body = json.loads(request.body)
    assert body["event"] == "task.succeeded" and body["delivery"] == found.id
    task = body["task"]
    assert (task["id"], task["kind"], task["status"], task["project"]) == (
        task_id, "export", "succeeded", "birds",
    )  # fmt: skip
    assert task["result"] == {"images": 4, "labels": 9, "filename": "b.zip"}
    assert task["url"] == f"http://ydc.test:8000/tasks/{task_id}"
    assert task["created_at"] <= task["started_at"] <= task["finished_at"]
    assert task["error"] is None


async def test_a_failing_receiver_is_retried_with_back_off_until_it_answers(
    stores: Stores,
) -> None:
    with webhook_receiver(500, 503, 200) as receiver:
        await _project_with_webhook(stores, receiver.url)
        await _end_a_task(stores, "failed", error="the zip could not be written")

        found = await _send_until(stores, FAST, {"delivered", "failed"})
        requests = await receiver.arrived(3)

    assert (found.state, found.attempts, found.last_status, found.last_error) == (
        "delivered", 3, 200, None,
    )  # fmt: skip
    assert len(requests) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.4 * 0.9  # 0.2 s, then doubled
    assert len({r.body for r in requests}) == 1  # every attempt sends the same body
    assert len({r.headers["X-Ydc-Delivery"] for r in requests}) == 1
    assert json.loads(requests[0].body)["task"]["error"] == "the zip could not be written"


async def test_a_receiver_that_keeps_failing_is_given_up_after_the_attempts(
    stores: Stores,
) -> None:
    policy = SendPolicy(attempts=3, backoff_s=0.05, timeout_s=5.0)
    with webhook_receiver(500) as receiver:
        await _project_with_webhook(stores, receiver.url)
        await _end_a_task(stores)

        found = await _send_until(stores, policy, {"delivered", "failed"})
        await asyncio.sleep(0.3)  # nothing more arrives once given up
        await deliver_due(stores, "test-sender", policy)
        requests = await receiver.arrived(3)

    assert len(receiver.received) == 3 == len(requests)
    assert (found.state, found.attempts, found.last_status) == ("failed", 3, 500)
    assert found.last_error == "answered 500" and found.next_attempt_at is None
    assert found.failing


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(stores: Stores) -> None:
    policy = SendPolicy(attempts=1, backoff_s=0.05, timeout_s=5.0)
    with (
        webhook_receiver(200) as elsewhere,
        webhook_receiver(302, redirect_to=elsewhere.url) as receiver,
    ):
        await _project_with_webhook(stores, receiver.url)
        await _end_a_task(stores)

        found = await _send_until(stores, policy, {"delivered", "failed"})
        await asyncio.sleep(0.2)

    assert found.state == "failed" and found.last_status == 302
    assert "redirects are not followed" in (found.last_error or "")
    assert elsewhere.url in (found.last_error or "")
    assert len(receiver.received) == 1 and elsewhere.received == []  # never asked


async def test_no_answer_in_time_and_a_closed_port_are_failed_attempts(stores: Stores) -> None:
    policy = SendPolicy(attempts=1, backoff_s=0.05, timeout_s=0.5)
    # Accepts connections (the kernel's backlog) and never answers.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        await _project_with_webhook(stores, f"http://127.0.0.1:{silent.getsockname()[1]}/h")
        await _end_a_task(stores)
        started = time.monotonic()
        timed_out = await _send_until(stores, policy, {"delivered", "failed"})
        took = time.monotonic() - started
    finally:
        silent.close()
    assert timed_out.state == "failed" and timed_out.last_status is None
    assert timed_out.last_error == "no answer within 0.5 s"
    assert took < 10

    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    await notify_service.set_webhook(stores, "birds", f"http://127.0.0.1:{port}/h")
    await stores.notification.retry_delivery(timed_out.id)
    refused = await _send_until(stores, policy, {"failed"})
    assert refused.attempts == 2 and "ConnectionRefusedError" in (refused.last_error or "")


async def test_a_sender_with_nothing_due_sends_nothing(stores: Stores) -> None:
    with webhook_receiver(200) as receiver:
        await _project_with_webhook(stores, receiver.url)
        assert await deliver_due(stores, "test-sender", FAST) == 0
        assert receiver.received == []


async def test_a_url_http_client_cannot_send_is_a_recorded_failed_attempt(stores: Stores) -> None:
    """A non-ASCII URL (saved before such URLs were refused) used to raise out of the POST and
    leave the delivery "sending", claimed again every lease with no attempt counted."""
    policy = SendPolicy(attempts=2, backoff_s=60.0, timeout_s=2.0)
    await stores.dataset.create("birds", ["gull"])
    await stores.notification.set_webhook(
        "birds", "http://127.0.0.1:9/höök", secret="whsec_" + "0" * 48
    )  # below the URL check, as an old row would be
    await _end_a_task(stores)

    assert await deliver_due(stores, "test-sender", policy) == 1
    [found] = await stores.notification.deliveries()

    assert (found.state, found.attempts, found.last_status) == ("pending", 1, None)
    assert "UnicodeEncodeError" in (found.last_error or "")
    assert found.next_attempt_at is not None


def test_post_json_turns_any_error_into_a_failed_answer() -> None:
    answer = notify_service.post_json("http://127.0.0.1:9/höök", b"{}", {}, 1.0)
    assert answer.status is None and not answer.delivered
    assert "UnicodeEncodeError" in (answer.error or "")

    answer = notify_service.post_json("http://127.0.0.1:99999999/", b"{}", {}, 1.0)
    assert answer.status is None and (answer.error or "").startswith("ValueError")


async def test_an_unexpected_error_while_sending_is_still_recorded_as_an_attempt(
    stores: Stores,
) -> None:
    def broken(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
        raise RuntimeError("a bug in the sender")

    policy = SendPolicy(attempts=1, backoff_s=0.05, timeout_s=2.0)
    with webhook_receiver(200) as receiver:
        await _project_with_webhook(stores, receiver.url)
        await _end_a_task(stores)
        assert await deliver_due(stores, "test-sender", policy, post=broken) == 1
    [found] = await stores.notification.deliveries()

    assert (found.state, found.attempts) == ("failed", 1)
    assert found.last_error == "could not send: RuntimeError: a bug in the sender"


async def test_the_sender_posts_on_its_own_threads_and_shuts_them_down(stores: Stores) -> None:
    threads: list[str] = []

    def record(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
        threads.append(threading.current_thread().name)
        return Answer(204)

    sender = WebhookSender(stores, FAST, poll_s=0.02, post=record)
    with webhook_receiver(200) as receiver:
        await _project_with_webhook(stores, receiver.url)
        sender.start()
        try:
            await _end_a_task(stores)
            await _end_a_task(stores)
            deadline = time.monotonic() + 30
            while len(threads) < 2:
                assert time.monotonic() < deadline, "nothing was sent in 30 s"
                await asyncio.sleep(0.02)
            executor = sender._executor
        finally:
            await sender.stop()

    assert threads and all(name.startswith("ydc-webhook") for name in threads)
    assert executor is not None and executor._shutdown  # the pool ends with the sender
    assert sender._executor is None


async def test_a_round_claims_no_more_than_the_sender_has_threads(stores: Stores) -> None:
    policy = SendPolicy(attempts=1, backoff_s=0.05, timeout_s=2.0, workers=2)
    with webhook_receiver(200) as receiver:
        await _project_with_webhook(stores, receiver.url)
        for _ in range(3):
            await _end_a_task(stores)
        assert await deliver_due(stores, "test-sender", policy) == 2
        assert await deliver_due(stores, "test-sender", policy) == 1
