"""The order state as the relay's memory, end to end over real HTTP (moto server, Refersion sandbox).

CONTRACT §10-§11 and issue 13: what is written around each post, duplicates after Powertools' record is
gone, unanswered posts and confirmations, and the two AWS-side faults (the done-mark write fails; the
quarantine of a rejected record fails).
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from handler.budget import record_budget_seconds
from handler.idempotency import KEY_PREFIX
from handler.order_state import Confirmation, ItemLine, OrderState
from handler.order_state_dynamodb import DynamoDBOrderStates
from local.lambda_shapes import sqs_event
from local.sandbox import Reply
from local.seed import seed_event
from tests.support.dynamodb_fault_proxy import DynamoDBFaultProxy
from tests.support.events import as_eventbridge_body, failures
from tests.support.relay_env import RelayEnv
from tests.support.subprocess_invocation import start_invocation_in_subprocess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ORDER_ID = "20150401102883"  # the seed's


@pytest.fixture
def memory_env(relay_env: RelayEnv) -> RelayEnv:
    relay_env.set(IDEMPOTENCY_TABLE_NAME=relay_env.resources.table_name)
    return relay_env


def states(env: RelayEnv) -> DynamoDBOrderStates:
    return DynamoDBOrderStates(env.aws.client("dynamodb"), env.resources.table_name)


def state_of(env: RelayEnv, order_id: str = ORDER_ID) -> OrderState:
    state = states(env).get(order_id)
    assert state is not None, "no order state written"
    return state


def forget_powertools_records(env: RelayEnv) -> None:
    """Powertools' 14-day records gone (expired), leaving the order state only."""
    table = env.aws.client("dynamodb")
    for item in table.scan(TableName=env.resources.table_name)["Items"]:
        if item["id"]["S"].startswith(f"{KEY_PREFIX}#"):
            table.delete_item(TableName=env.resources.table_name, Key={"id": item["id"]})


def outcome_lines(relay_logs: io.StringIO) -> list[dict[str, Any]]:
    lines = (json.loads(x) for x in relay_logs.getvalue().splitlines() if x.startswith("{"))
    return [line for line in lines if "outcome" in line]


def seed_batch() -> dict[str, Any]:
    return sqs_event(as_eventbridge_body(seed_event()))


def test_a_delivered_order_is_remembered_with_the_items_as_sent(memory_env: RelayEnv) -> None:
    # Given Refersion answers 200, when the seed order is relayed
    assert failures(memory_env.invoke(seed_batch())) == []
    # Then its state holds the sku, unit price and quantity of the body Refersion received
    [received] = memory_env.sandbox.received()
    sent = json.loads(received.body)
    state = state_of(memory_env)
    assert state.delivered is not None
    assert state.delivered.items == tuple(
        ItemLine(item["sku"], Decimal(str(item["price"])), item["quantity"]) for item in sent["items"]
    )
    assert state.delivered.currency == sent["currency_code"]
    assert state.seen_at is not None
    assert state.post_began_at is not None


def test_a_copy_is_a_duplicate_from_the_order_state_once_powertools_forgot_the_order(
    memory_env: RelayEnv, relay_logs: io.StringIO
) -> None:
    memory_env.invoke(seed_batch())
    forget_powertools_records(memory_env)
    assert failures(memory_env.invoke(seed_batch())) == []
    assert memory_env.sandbox.accepted_order_ids() == [ORDER_ID]
    line = outcome_lines(relay_logs)[-1]
    assert line["outcome"] == "duplicate"
    assert "(order state)" in line["reason"]


def test_an_answer_lost_after_sending_is_unanswered_and_in_doubt(
    memory_env: RelayEnv, relay_logs: io.StringIO
) -> None:
    memory_env.sandbox.script(Reply(drop="after"))
    memory_env.invoke(seed_batch())
    state = state_of(memory_env)
    assert state.last_post is not None
    assert (state.last_post.answered, state.post_in_doubt) == (False, True)
    assert outcome_lines(relay_logs)[-1]["maybe_received"] is True


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_connect_failure_sent_nothing_and_leaves_no_doubt(
    memory_env: RelayEnv, relay_logs: io.StringIO
) -> None:
    # Given an endpoint nobody listens on
    memory_env.set(REFERSION_ENDPOINT=f"http://127.0.0.1:{_closed_port()}/tracker/orders/paid")
    # When the order is relayed
    memory_env.invoke(seed_batch())
    # Then it comes back, said not sent (no maybe_received), and its post-began mark is taken back
    [line] = outcome_lines(relay_logs)
    assert (line["outcome"], line["reason"]) == ("retry", "could not connect, nothing sent")
    assert "maybe_received" not in line
    state = state_of(memory_env)
    assert (state.post_began_at, state.post_in_doubt) == (None, False)


def _kill_mid_post(env: RelayEnv, event: dict[str, Any], window_ms: float) -> float:
    """Run `event` in its own process and kill it while Refersion holds its post; the time of the kill."""
    env.sandbox.script(Reply(delay=window_ms / 1000 + 60.0))  # held past the whole test
    victim = start_invocation_in_subprocess(event, window_ms)
    assert env.sandbox.wait_for(lambda s: s.in_flight() == 1, timeout=20), "the post never went out"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    return time.monotonic()


def test_an_invocation_killed_mid_post_leaves_its_post_began_mark(memory_env: RelayEnv) -> None:
    _kill_mid_post(memory_env, seed_batch(), record_budget_seconds(1.0) * 1000 + 2_000)
    state = state_of(memory_env)
    assert state.post_began_at is not None
    assert state.last_post is None
    assert state.post_in_doubt


class TestConfirmations:
    @pytest.fixture
    def confirming(self, memory_env: RelayEnv) -> RelayEnv:
        memory_env.set(CONFIRMATIONS_ENABLED="true", CONFIRMATION_WAIT_SECONDS="600")
        return memory_env

    def _confirm(self, env: RelayEnv) -> None:
        confirmation = Confirmation("conv-77", ORDER_ID, "approved", "aff-1", datetime.now(UTC))
        states(env).put_confirmation(confirmation)

    def test_a_confirmed_order_is_delivered_without_posting_again(
        self, confirming: RelayEnv, relay_logs: io.StringIO
    ) -> None:
        # Given a post Refersion processed but never answered, and its confirmation since
        confirming.sandbox.script(Reply(drop="after"))
        assert len(failures(confirming.invoke(seed_batch()))) == 1
        self._confirm(confirming)
        # When the order comes back
        assert failures(confirming.invoke(seed_batch())) == []
        # Then it is delivered (confirmed), nothing more is posted, and the state says delivered
        assert len(confirming.sandbox.received()) == 1
        line = outcome_lines(relay_logs)[-1]
        assert (line["outcome"], line["reason"]) == (
            "delivered",
            "confirmed by Refersion (conversion conv-77)",
        )
        assert state_of(confirming).delivered is not None

    def test_an_unconfirmed_order_waits_within_the_wait_and_is_not_posted(
        self, confirming: RelayEnv, relay_logs: io.StringIO
    ) -> None:
        confirming.sandbox.script(Reply(drop="after"))
        confirming.invoke(seed_batch())
        assert len(failures(confirming.invoke(event := seed_batch()))) == 1
        assert failures(confirming.invoke(event)) == [event["Records"][0]["messageId"]]
        assert len(confirming.sandbox.received()) == 1
        line = outcome_lines(relay_logs)[-1]
        assert line["outcome"] == "waiting"
        assert 0 < line["wait_seconds"] <= 600

    def test_an_unconfirmed_order_is_posted_again_after_the_wait(
        self, confirming: RelayEnv, relay_logs: io.StringIO
    ) -> None:
        confirming.sandbox.script(Reply(drop="before"))
        confirming.invoke(seed_batch())
        confirming.set(CONFIRMATION_WAIT_SECONDS="0")  # the wait is over
        confirming.sandbox.clear_faults()
        assert failures(confirming.invoke(seed_batch())) == []
        assert confirming.sandbox.accepted_order_ids() == [ORDER_ID]
        line = outcome_lines(relay_logs)[-1]
        assert line["outcome"] == "delivered"
        assert line["reason"] == "posted again: no confirmation within 0 s of the unanswered post"

    def test_a_killed_post_waits_for_powertools_in_progress_window_then_for_its_confirmation(
        self, confirming: RelayEnv, relay_logs: io.StringIO
    ) -> None:
        # Given an invocation killed while Refersion held its post (Powertools' in-progress record stays)
        window_ms = record_budget_seconds(1.0) * 1000 + 2_000
        killed_at = _kill_mid_post(confirming, seed_batch(), window_ms)
        # When the order comes back within the killed invocation's time: still locked, a plain retry
        assert len(failures(confirming.invoke(seed_batch()))) == 1
        assert outcome_lines(relay_logs)[-1]["reason"].startswith("another invocation is delivering")
        assert time.monotonic() - killed_at < window_ms / 1000, "too slow to observe the in-progress window"
        # Then, once the window has passed and Refersion has confirmed the order, it is delivered unposted
        time.sleep(max(0.0, window_ms / 1000 + 0.5 - (time.monotonic() - killed_at)))
        self._confirm(confirming)
        confirming.sandbox.clear_faults()
        assert failures(confirming.invoke(seed_batch())) == []
        assert outcome_lines(relay_logs)[-1]["reason"].startswith("confirmed by Refersion")
        # (the killed post is still held unanswered, so the sandbox has recorded nothing: no other post)
        assert confirming.sandbox.received() == []


class TestAwsFaults:
    """Issue 13: the relay's own AWS calls fail around a post that Refersion accepted or refused."""

    @pytest.fixture
    def proxy(self, memory_env: RelayEnv) -> Iterator[DynamoDBFaultProxy]:
        with DynamoDBFaultProxy(memory_env.aws.endpoint_url) as running:
            memory_env.set(AWS_ENDPOINT_URL_DYNAMODB=running.url)
            yield running

    def test_a_failed_done_mark_is_retried_into_the_order_state_and_a_copy_is_a_duplicate(
        self, memory_env: RelayEnv, proxy: DynamoDBFaultProxy, relay_logs: io.StringIO
    ) -> None:
        # Given the order-state done-mark is throttled twice, and Powertools' done-mark fails outright
        proxy.fail_matching(
            "throttle", 2, lambda op, body: op.endswith("UpdateItem") and b'":digest"' in body
        )
        proxy.fail_matching("lose", 1, lambda op, body: op.endswith("UpdateItem") and b"COMPLETED" in body)
        # When the order is delivered
        assert failures(memory_env.invoke(seed_batch())) == []
        # Then the retried write recorded it (no "not recorded" in the line)
        assert "not recorded" not in outcome_lines(relay_logs)[-1].get("reason", "")
        assert state_of(memory_env).delivered is not None
        # And a copy published later (Powertools' record gone by then) is a duplicate, not posted again
        forget_powertools_records(memory_env)
        assert failures(memory_env.invoke(seed_batch())) == []
        assert memory_env.sandbox.accepted_order_ids() == [ORDER_ID]
        assert outcome_lines(relay_logs)[-1]["outcome"] == "duplicate"

    def test_a_done_mark_that_cannot_be_written_is_said_delivered_but_not_recorded(
        self,
        memory_env: RelayEnv,
        proxy: DynamoDBFaultProxy,
        relay_logs: io.StringIO,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        # Given the table refuses the order-state done-mark (access denied: no retry can help)
        proxy.fail_matching("deny", 100, lambda op, body: op.endswith("UpdateItem") and b'":digest"' in body)
        # When the order is delivered
        assert failures(memory_env.invoke(seed_batch())) == []
        # Then the line says delivered but not recorded, and the metrics count it with its cause
        line = outcome_lines(relay_logs)[-1]
        assert line["outcome"] == "delivered"
        assert line["reason"].startswith("delivered but not recorded (AccessDeniedException)")
        emf = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"_aws"')]
        assert any(m.get("cause") == "AccessDeniedException" and "delivered_not_recorded" in m for m in emf)
        assert any(m.get("operation") == "order_state_write" and "aws_dynamodb_error" in m for m in emf)

    def test_a_rejected_record_whose_quarantine_failed_is_quarantined_next_time_without_a_post(
        self, memory_env: RelayEnv
    ) -> None:
        # Given Refersion rejects the order and the dead-letter queue cannot be reached
        dlq_url = memory_env.resources.dlq_url
        memory_env.sandbox.script(Reply(status=422))
        memory_env.set(DEAD_LETTER_QUEUE_URL=f"{memory_env.aws.endpoint_url}/123456789012/no-such-queue")
        event = seed_batch()
        assert failures(memory_env.invoke(event)) == [event["Records"][0]["messageId"]]
        # When the same record comes back once the queue is reachable again (and Refersion would accept)
        memory_env.set(DEAD_LETTER_QUEUE_URL=dlq_url)
        memory_env.sandbox.clear_faults()
        assert failures(memory_env.invoke(event)) == []
        # Then it is quarantined as rejected with the remembered status, and was posted only once
        assert [r.status for r in memory_env.sandbox.received()] == [422]
        messages = memory_env.aws.client("sqs").receive_message(
            QueueUrl=dlq_url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
        )["Messages"]
        [quarantined] = messages
        attributes = quarantined["MessageAttributes"]
        assert attributes["outcome"]["StringValue"] == "rejected"
        assert attributes["http_status"]["StringValue"] == "422"
        # And a redrive (a new message) of the fixed record is posted and delivered
        assert failures(memory_env.invoke(sqs_event(quarantined["Body"]))) == []
        assert memory_env.sandbox.accepted_order_ids() == [ORDER_ID]
