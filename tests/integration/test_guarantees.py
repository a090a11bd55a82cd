"""CONTRACT §6 guarantees: each order credited once (idempotency on its id), none lost, retries paced."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from handler.budget import record_budget_seconds
from local.lambda_shapes import FakeLambdaContext, eventbridge_envelope, sqs_event, sqs_record
from local.sandbox import Reply
from local.seed import seed_event
from tests.support.events import as_eventbridge_body, failures
from tests.support.relay_env import RelayEnv
from tests.support.subprocess_invocation import start_invocation_in_subprocess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ledger_env(relay_env: RelayEnv) -> RelayEnv:
    relay_env.set(IDEMPOTENCY_TABLE_NAME=relay_env.resources.table_name)
    return relay_env


def test_the_same_order_in_two_messages_is_posted_once(ledger_env: RelayEnv, relay_logs: Any) -> None:
    body = as_eventbridge_body(seed_event())
    assert failures(ledger_env.invoke(sqs_event(body))) == []
    assert failures(ledger_env.invoke(sqs_event(body))) == []  # duplicate: acknowledged
    assert ledger_env.sandbox.accepted_order_ids() == ["20150401102883"]
    outcomes = [json.loads(line).get("outcome") for line in relay_logs.getvalue().splitlines()]
    assert [o for o in outcomes if o] == ["delivered", "duplicate"]


def test_the_same_order_through_each_trigger_shape_is_posted_once(ledger_env: RelayEnv) -> None:
    event = seed_event()
    ledger_env.invoke(sqs_event(as_eventbridge_body(event)))
    ledger_env.invoke(sqs_event(json.dumps(event)))
    assert ledger_env.invoke(eventbridge_envelope(event))["outcome"] == "duplicate"
    assert len(ledger_env.sandbox.received()) == 1


def test_the_same_order_twice_in_one_batch_is_posted_once_and_the_twin_comes_back(
    ledger_env: RelayEnv,
) -> None:
    body = as_eventbridge_body(seed_event())
    first = ledger_env.invoke(sqs_event(body, body))
    # The twin either saw the order in flight (retry) or already delivered (duplicate)
    assert len(failures(first)) <= 1
    assert failures(ledger_env.invoke(sqs_event(body))) == []
    assert ledger_env.sandbox.accepted_order_ids() == ["20150401102883"]


def test_an_order_that_was_not_delivered_is_not_remembered(ledger_env: RelayEnv) -> None:
    ledger_env.sandbox.script(Reply(status=503))
    body = as_eventbridge_body(seed_event())
    assert len(failures(ledger_env.invoke(sqs_event(body)))) == 1
    assert failures(ledger_env.invoke(sqs_event(body))) == []
    assert ledger_env.sandbox.accepted_order_ids() == ["20150401102883"]


def test_a_rejected_order_can_be_redriven_once_fixed(ledger_env: RelayEnv) -> None:
    ledger_env.sandbox.script(Reply(status=422))
    body = as_eventbridge_body(seed_event())
    assert failures(ledger_env.invoke(sqs_event(body))) == []
    # Redriven from the DLQ after the cause was fixed: it is posted, not taken for a duplicate
    assert failures(ledger_env.invoke(sqs_event(body))) == []
    assert [r.status for r in ledger_env.sandbox.received()] == [422, 200]


def test_an_order_in_flight_in_a_killed_invocation_is_delivered_once_after_the_in_progress_window(
    ledger_env: RelayEnv,
) -> None:
    # Given an invocation, in its own process, killed while its post is held by Refersion (for longer
    # than the whole test: the held post never completes)
    body = as_eventbridge_body(seed_event())
    window_ms = record_budget_seconds(1.0) * 1000 + 2_000  # just above what one record needs
    ledger_env.sandbox.script(Reply(delay=window_ms / 1000 + 60.0))
    victim = start_invocation_in_subprocess(sqs_event(body), remaining_ms=window_ms)
    assert ledger_env.sandbox.wait_for(lambda s: s.in_flight() == 1, timeout=20), "the post never went out"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    killed_at = time.monotonic()
    # When the record comes back before the in-progress window has passed, it is not posted again
    early = ledger_env.invoke(sqs_event(body))
    assert len(failures(early)) == 1
    assert time.monotonic() - killed_at < window_ms / 1000, "too slow to observe the in-progress window"
    # Then, once the window has passed, it is delivered
    time.sleep(window_ms / 1000 + 0.5)
    ledger_env.sandbox.clear_faults()
    assert failures(ledger_env.invoke(sqs_event(body))) == []
    # The killed post is still held unanswered (it never completed); the order was delivered once.
    assert ledger_env.sandbox.accepted_order_ids() == ["20150401102883"]


class TestRetryPacing:
    @pytest.fixture
    def paced_env(self, relay_env: RelayEnv) -> RelayEnv:
        relay_env.set(SOURCE_QUEUE_URL=relay_env.resources.queue_url, RETRY_BASE_DELAY_SECONDS="1")
        return relay_env

    def _receive(self, env: RelayEnv) -> dict[str, Any] | None:
        messages = env.aws.client("sqs").receive_message(
            QueueUrl=env.resources.queue_url, AttributeNames=["All"], MaxNumberOfMessages=1
        )
        found: list[dict[str, Any]] = messages.get("Messages", [])
        return found[0] if found else None

    def _as_lambda_event(self, message: dict[str, Any]) -> dict[str, Any]:
        record = sqs_record(
            message["Body"],
            message_id=message["MessageId"],
            receive_count=int(message["Attributes"]["ApproximateReceiveCount"]),
        )
        record["receiptHandle"] = message["ReceiptHandle"]
        return {"Records": [record]}

    def _wait_until_visible(self, env: RelayEnv, limit: float) -> tuple[float, dict[str, Any]] | None:
        """Seconds until the message can be received again, and the message (now received again)."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            message = self._receive(env)
            if message is not None:
                return time.monotonic() - started, message
            time.sleep(0.2)
        return None

    def test_a_retried_record_stays_invisible_on_an_exponential_schedule(self, paced_env: RelayEnv) -> None:
        paced_env.sandbox.script(Reply(status=503), Reply(status=503))
        paced_env.aws.client("sqs").send_message(
            QueueUrl=paced_env.resources.queue_url, MessageBody=as_eventbridge_body(seed_event())
        )
        # First receive (count 1): a 503 paces it 1 s instead of the queue's 360 s
        first = self._receive(paced_env)
        assert first is not None
        assert len(failures(paced_env.invoke(self._as_lambda_event(first)))) == 1
        back = self._wait_until_visible(paced_env, limit=5)
        assert back is not None
        waited, second = back
        assert waited >= 0.5
        # Second receive (count 2): a 503 paces it 4 s: invisible after 2.5 s, back within 4 more
        assert failures(paced_env.invoke(self._as_lambda_event(second)))
        assert self._wait_until_visible(paced_env, limit=2.5) is None
        assert self._wait_until_visible(paced_env, limit=4) is not None

    def test_a_longer_retry_after_from_refersion_is_honoured(self, paced_env: RelayEnv) -> None:
        paced_env.sandbox.script(Reply(status=429, headers={"Retry-After": "3"}))
        paced_env.aws.client("sqs").send_message(
            QueueUrl=paced_env.resources.queue_url, MessageBody=as_eventbridge_body(seed_event())
        )
        message = self._receive(paced_env)
        assert message is not None
        assert failures(paced_env.invoke(self._as_lambda_event(message)))
        assert self._wait_until_visible(paced_env, limit=2.0) is None
        assert self._wait_until_visible(paced_env, limit=3.0) is not None


def test_a_context_with_time_left_posts_every_record(ledger_env: RelayEnv) -> None:
    event = sqs_event(*(as_eventbridge_body(seed_event(order_id=f"C-{i}")) for i in range(10)))
    assert failures(ledger_env.invoke(event, FakeLambdaContext(remaining_ms=60_000))) == []
    assert sorted(ledger_env.sandbox.accepted_order_ids()) == sorted(f"C-{i}" for i in range(10))


def test_a_later_copy_with_other_amounts_is_a_duplicate_that_says_so(
    ledger_env: RelayEnv, relay_logs: io.StringIO
) -> None:
    # Given an order already credited, when a copy with the same order id but another price arrives
    ledger_env.invoke(sqs_event(as_eventbridge_body(seed_event())))
    changed = seed_event(products=[{"sku": "PROD_A", "name": "Product A", "price": 7.25, "quantity": 2}])
    ledger_env.invoke(sqs_event(as_eventbridge_body(changed)))
    ledger_env.invoke(sqs_event(as_eventbridge_body(seed_event())))
    # Then it is not posted again, and its outcome line says the body differed (an exact copy does not)
    assert ledger_env.sandbox.accepted_order_ids() == ["20150401102883"]
    lines = [json.loads(x) for x in relay_logs.getvalue().splitlines() if '"outcome"' in x]
    assert [line["outcome"] for line in lines] == ["delivered", "duplicate", "duplicate"]
    assert "with a different body" in lines[1]["reason"]
    assert "different body" not in lines[2]["reason"]
