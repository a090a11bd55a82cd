"""The order state as the relay's memory (handler.order_memory via handler.relay), with in-memory fakes.

What is remembered around each post (seen, post began, answered/unanswered/not sent, delivered with the
items as sent), what the memory decides on the next copy (duplicate, rejected again, confirmed, waiting),
and what happens when the store fails. No socket is opened.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from handler.config import Settings
from handler.credentials import KeyPair
from handler.delivery import Deliverer
from handler.observability import metrics
from handler.order_state import Confirmation, ItemLine, OrderState
from handler.outcomes import Outcome, RecordKind, RecordResult
from handler.refersion_client import HttpAnswer
from handler.relay import Deadline, Relay
from handler.triggers import InboundRecord
from local.lambda_shapes import sqs_event
from tests.support.events import as_eventbridge_body, failures, order
from tests.support.fakes import (
    FakeKeyPairs,
    InMemoryLedger,
    RecordingPacer,
    RecordingQuarantine,
    ScriptedPoster,
    answer,
    no_answer,
)
from tests.support.fakes_order_state import InMemoryOrderStates
from tests.support.lambda_context import lambda_context

BASE_ENV = {"REFERSION_SECRET_ID": "refersion/keys", "DEAD_LETTER_QUEUE_URL": "https://sqs.example/dlq"}
NOTHING_SENT = no_answer("could not connect, nothing sent", maybe_received=False)


class StatePeekingPoster(ScriptedPoster):
    """A poster that notes the order state as it stands at the moment of each post."""

    def __init__(self, states: InMemoryOrderStates, *script: HttpAnswer | Exception) -> None:
        super().__init__(*script)
        self.states = states
        self.seen_at_post: list[OrderState | None] = []
        self.outage_after_post = 0

    def post(self, body: bytes, keys: KeyPair) -> HttpAnswer:
        self.seen_at_post.append(self.states.get(json.loads(body)["order_id"]))
        result = super().post(body, keys)
        self.states.outage = self.outage_after_post
        return result


@dataclass
class Memory:
    relay: Relay
    states: InMemoryOrderStates
    poster: StatePeekingPoster
    quarantine: RecordingQuarantine
    ledger: InMemoryLedger
    pacer: RecordingPacer
    results: list[RecordResult] = field(default_factory=list)

    def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke with this SQS event (keep it to send the very same record again)."""
        return self.relay.handle(event, lambda_context(remaining_ms=60_000))

    def forget_powertools(self) -> None:
        """Powertools' 14-day record expired (or its done-mark write failed): only the order state is left."""
        self.ledger.delivered.clear()


def make_memory(executor: ThreadPoolExecutor, **env: str) -> Memory:
    settings = Settings.from_env({**BASE_ENV, **env})
    states = InMemoryOrderStates()
    poster = StatePeekingPoster(states, answer(200))
    quarantine, ledger, pacer = RecordingQuarantine(), InMemoryLedger(), RecordingPacer()
    relay = Relay(
        settings=settings,
        deliverer=Deliverer(FakeKeyPairs(), poster),
        quarantine=quarantine,
        ledger=ledger,
        pacer=pacer,
        executor=executor,
        order_states=states,
    )
    return Memory(relay, states, poster, quarantine, ledger, pacer)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def memory(executor: ThreadPoolExecutor) -> Memory:
    return make_memory(executor)


@pytest.fixture
def confirming(executor: ThreadPoolExecutor) -> Memory:
    return make_memory(executor, CONFIRMATIONS_ENABLED="true", CONFIRMATION_WAIT_SECONDS="600")


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def counted(name: str) -> int:
    entry = metrics.metric_set.get(name)
    return 0 if entry is None else len(entry["Value"])


def outcome_lines(relay_logs: io.StringIO) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in relay_logs.getvalue().splitlines() if line.startswith("{"))
    return [line for line in lines if "outcome" in line]


def batch(event: dict[str, Any]) -> dict[str, Any]:
    return sqs_event(as_eventbridge_body(event))


class TestWhatIsRemembered:
    def test_a_delivered_order_is_remembered_with_its_items_as_sent_currency_and_digest(
        self, memory: Memory
    ) -> None:
        # Given Refersion answers 200, when an order with one product comes in
        memory.send(batch(order("M-1")))
        # Then its state says seen, delivered, with the sku, unit price and quantity sent, and the digest
        state = memory.states.get("M-1")
        assert state is not None
        assert state.delivered is not None
        assert state.seen_at is not None
        assert state.delivered.items == (ItemLine("PROD_A", Decimal("5.5"), 2),)
        assert state.delivered.currency == "USD"
        [body] = memory.poster.bodies
        assert state.delivered.body_digest == hashlib.sha256(body).hexdigest()
        assert not state.post_in_doubt

    def test_the_post_began_mark_is_written_before_the_post(self, memory: Memory) -> None:
        memory.send(batch(order("M-2")))
        [at_post] = memory.poster.seen_at_post
        assert at_post is not None
        assert at_post.post_began_at is not None
        assert at_post.delivered is None

    def test_an_unanswered_post_is_remembered_as_in_doubt_and_logged_maybe_received(
        self, memory: Memory, relay_logs: io.StringIO
    ) -> None:
        memory.poster.answer_with(no_answer())
        memory.send(batch(order("M-3")))
        state = memory.states.get("M-3")
        assert state is not None
        assert state.last_post is not None
        assert (state.last_post.answered, state.post_in_doubt) == (False, True)
        [line] = outcome_lines(relay_logs)
        assert (line["outcome"], line["maybe_received"]) == ("retry", True)

    def test_a_post_that_sent_nothing_leaves_no_doubt_and_no_maybe_received(
        self, memory: Memory, relay_logs: io.StringIO
    ) -> None:
        memory.poster.answer_with(NOTHING_SENT)
        memory.send(batch(order("M-4")))
        state = memory.states.get("M-4")
        assert state is not None
        assert (state.post_began_at, state.post_in_doubt) == (None, False)
        [line] = outcome_lines(relay_logs)
        assert line["outcome"] == "retry"
        assert "maybe_received" not in line

    def test_a_post_answered_503_is_remembered_as_answered_and_posted_again(self, memory: Memory) -> None:
        memory.poster.answer_with(answer(503), answer(200))
        memory.send(batch(order("M-5")))
        state = memory.states.get("M-5")
        assert state is not None
        assert state.last_post is not None
        assert state.last_post.answered
        memory.send(batch(order("M-5")))
        assert len(memory.poster.posts) == 2


class TestWhatTheMemoryDecides:
    def test_an_order_delivered_is_a_duplicate_even_after_powertools_forgot_it(
        self, memory: Memory, relay_logs: io.StringIO
    ) -> None:
        # Given an order delivered, and Powertools' record of it gone
        memory.send(batch(order("M-6")))
        memory.forget_powertools()
        # When a copy comes in
        response = memory.send(batch(order("M-6")))
        # Then it is a duplicate from the order state, not posted again
        assert failures(response) == []
        assert len(memory.poster.posts) == 1
        line = outcome_lines(relay_logs)[-1]
        assert line["outcome"] == "duplicate"
        assert "(order state)" in line["reason"]

    def test_a_copy_with_other_items_is_a_duplicate_that_says_so_from_the_order_state(
        self, memory: Memory, relay_logs: io.StringIO
    ) -> None:
        memory.send(batch(order("M-7")))
        memory.forget_powertools()
        memory.send(batch(order("M-7", products=[{"sku": "X", "price": 1, "quantity": 1}])))
        assert outcome_lines(relay_logs)[-1]["reason"].endswith("(this copy's changes were not sent)")

    def test_the_order_state_unavailable_before_the_post_sends_the_record_back_unposted(
        self, memory: Memory
    ) -> None:
        memory.states.outage = 1
        response = memory.send(event := batch(order("M-8")))
        assert failures(response) == [event["Records"][0]["messageId"]]
        assert memory.poster.posts == []
        assert counted("aws_dynamodb_error") == 1

    def test_a_failed_post_began_mark_sends_the_record_back_unposted(self, memory: Memory) -> None:
        memory.states.outage = 0
        original = memory.states.mark_post_began

        def failing(*args: Any, **kwargs: Any) -> OrderState:
            memory.states.outage = 1
            return original(*args, **kwargs)

        memory.states.mark_post_began = failing  # type: ignore[method-assign]
        response = memory.send(batch(order("M-9")))
        assert len(failures(response)) == 1
        assert memory.poster.posts == []


class TestDeliveredButNotRecorded:
    def test_the_outcome_line_and_a_metric_say_so_and_the_order_stays_delivered(
        self, memory: Memory, relay_logs: io.StringIO
    ) -> None:
        # Given the store fails every write after the post (past the record's budget)
        memory.poster.outage_after_post = 1000
        # When the order is posted and answered 200
        response = memory.send(batch(order("M-10")))
        # Then it is acknowledged as delivered, and the line and metrics say it was not recorded
        assert failures(response) == []
        [line] = outcome_lines(relay_logs)
        assert line["outcome"] == "delivered"
        assert line["reason"].startswith("delivered but not recorded (ThrottlingException)")
        assert counted("delivered_not_recorded") == 1
        assert counted("aws_dynamodb_error") == 1


class TestRejectedRecords:
    def test_a_rejected_record_whose_quarantine_failed_is_quarantined_next_time_without_a_post(
        self, memory: Memory, relay_logs: io.StringIO
    ) -> None:
        # Given Refersion rejects the order and the dead-letter queue cannot be reached
        memory.poster.answer_with(answer(422, "bad sku"))
        memory.quarantine.failing = True
        event = batch(order("M-11"))
        assert failures(memory.send(event)) == [event["Records"][0]["messageId"]]
        # When the same record comes back and the queue is reachable again
        memory.quarantine.failing = False
        response = memory.send(event)
        # Then it is quarantined with the remembered status and reason, and not posted again
        assert failures(response) == []
        assert len(memory.poster.posts) == 1
        [(_, result)] = memory.quarantine.sent
        assert (result.outcome, result.http_status) == (Outcome.REJECTED, 422)
        assert result.reason.startswith("Refersion answered 422: bad sku")
        assert "rejected before; not posted again" in result.reason

    def test_a_redriven_record_has_a_new_message_id_and_is_posted(self, memory: Memory) -> None:
        memory.poster.answer_with(answer(422), answer(200))
        memory.send(batch(order("M-12")))
        # The DLQ redrive makes a new message: the fixed order is posted and delivered
        response = memory.send(batch(order("M-12")))
        assert failures(response) == []
        assert len(memory.poster.posts) == 2
        state = memory.states.get("M-12")
        assert state is not None
        assert state.delivered is not None


def _confirm(states: InMemoryOrderStates, order_id: str, conversion_id: str = "conv-1") -> None:
    states.put_confirmation(Confirmation(conversion_id, order_id, "approved", None, datetime.now(UTC)))


class TestConfirmations:
    def test_an_unanswered_post_confirmed_by_refersion_is_delivered_without_posting_again(
        self, confirming: Memory, relay_logs: io.StringIO
    ) -> None:
        # Given a post that went unanswered, and Refersion's confirmation of the order since
        confirming.poster.answer_with(no_answer(), answer(200))
        confirming.send(batch(order("N-1")))
        _confirm(confirming.states, "N-1")
        # When the order comes back
        response = confirming.send(batch(order("N-1")))
        # Then it is delivered, confirmed by Refersion, with nothing posted; the state says delivered
        assert failures(response) == []
        assert len(confirming.poster.posts) == 1
        line = outcome_lines(relay_logs)[-1]
        assert (line["outcome"], line["reason"]) == (
            "delivered",
            "confirmed by Refersion (conversion conv-1)",
        )
        state = confirming.states.get("N-1")
        assert state is not None
        assert state.delivered is not None
        assert state.delivered.items == (ItemLine("PROD_A", Decimal("5.5"), 2),)

    def test_without_a_confirmation_within_the_wait_the_order_waits_unposted(
        self, confirming: Memory, relay_logs: io.StringIO
    ) -> None:
        confirming.poster.answer_with(no_answer())
        confirming.send(batch(order("N-2")))
        response = confirming.send(event := batch(order("N-2")))
        assert failures(response) == [event["Records"][0]["messageId"]]  # handed back like a retry
        assert len(confirming.poster.posts) == 1
        line = outcome_lines(relay_logs)[-1]
        assert line["outcome"] == "waiting"
        assert 590 < line["wait_seconds"] <= 600
        assert "waiting up to 600 s for Refersion's confirmation" in line["reason"]
        [_, [(_, paced)]] = confirming.pacer.paced
        assert paced.outcome is Outcome.WAITING
        assert paced.wait_seconds is not None

    def test_a_killed_post_with_no_answer_recorded_waits_too(self, confirming: Memory) -> None:
        # Given a post began and nothing after it (the invocation was killed mid-post)
        confirming.states.mark_seen("N-3")
        confirming.states.mark_post_began("N-3", datetime.now(UTC) - timedelta(seconds=30))
        confirming.send(batch(order("N-3")))
        assert confirming.poster.posts == []

    def test_without_a_confirmation_after_the_wait_the_order_is_posted_again_and_says_so(
        self, executor: ThreadPoolExecutor, relay_logs: io.StringIO
    ) -> None:
        memory = make_memory(executor, CONFIRMATIONS_ENABLED="true", CONFIRMATION_WAIT_SECONDS="60")
        memory.states.mark_seen("N-4")
        memory.states.mark_post_began("N-4", datetime.now(UTC) - timedelta(seconds=61))
        memory.states.mark_answered("N-4", False, datetime.now(UTC) - timedelta(seconds=60))
        response = memory.send(batch(order("N-4")))
        assert failures(response) == []
        assert len(memory.poster.posts) == 1
        line = outcome_lines(relay_logs)[-1]
        assert line["outcome"] == "delivered"
        assert line["reason"] == "posted again: no confirmation within 60 s of the unanswered post"

    def test_with_confirmations_off_an_unanswered_post_is_posted_again_at_once(self, memory: Memory) -> None:
        memory.poster.answer_with(no_answer(), answer(200))
        memory.send(batch(order("N-5")))
        _confirm(memory.states, "N-5")
        memory.send(batch(order("N-5")))
        assert len(memory.poster.posts) == 2

    def test_an_answered_post_is_not_in_doubt_and_is_posted_again_without_waiting(
        self, confirming: Memory
    ) -> None:
        confirming.poster.answer_with(answer(503), answer(200))
        confirming.send(batch(order("N-6")))
        confirming.send(batch(order("N-6")))
        assert len(confirming.poster.posts) == 2


@dataclass
class FakeRefundPath:
    """A RefundPath that answers with a fixed outcome and records what it was handed."""

    outcome: Outcome = Outcome.DELIVERED
    calls: list[tuple[InboundRecord, dict[str, Any], float]] = field(default_factory=list)

    def relay(self, inbound: InboundRecord, event: dict[str, Any], deadline: float) -> RecordResult:
        self.calls.append((inbound, event, deadline))
        return RecordResult(inbound.record_id, self.outcome, reason="refund path", kind=RecordKind.REFUND)

    def close(self) -> None:
        return None


def refund_relay(
    executor: ThreadPoolExecutor, path: FakeRefundPath, *, enabled: bool, with_states: bool = True
) -> tuple[Relay, RecordingQuarantine]:
    env = {**BASE_ENV, "REFUNDS_ENABLED": "true" if enabled else "false", "IDEMPOTENCY_TABLE_NAME": "orders"}
    quarantine = RecordingQuarantine()
    relay = Relay(
        settings=Settings.from_env(env),
        deliverer=Deliverer(FakeKeyPairs(), ScriptedPoster(answer(200))),
        quarantine=quarantine,
        ledger=InMemoryLedger(),
        pacer=RecordingPacer(),
        executor=executor,
        order_states=InMemoryOrderStates() if with_states else None,
        refunds=path,
    )
    return relay, quarantine


class TestRefundRouting:
    def test_a_refund_goes_to_the_refund_path_when_refunds_are_on(
        self, executor: ThreadPoolExecutor, relay_logs: io.StringIO
    ) -> None:
        path = FakeRefundPath()
        relay, _ = refund_relay(executor, path, enabled=True)
        relay.handle(batch(order("R-1", event="Order Refunded")), lambda_context())
        [(_, event, deadline)] = path.calls
        assert event["properties"]["order_id"] == "R-1"
        assert deadline > 0
        [line] = outcome_lines(relay_logs)
        assert (line["outcome"], line["kind"]) == ("delivered", "refund")

    @pytest.mark.parametrize(("enabled", "with_states"), [(False, True), (True, False)])
    def test_a_refund_is_dropped_when_refunds_are_off_or_there_is_no_order_state(
        self, executor: ThreadPoolExecutor, relay_logs: io.StringIO, enabled: bool, with_states: bool
    ) -> None:
        path = FakeRefundPath()
        relay, _ = refund_relay(executor, path, enabled=enabled, with_states=with_states)
        relay.handle(batch(order("R-2", event="Order Cancelled")), lambda_context())
        assert path.calls == []
        assert outcome_lines(relay_logs)[0]["outcome"] == "dropped"

    def test_a_rejected_refund_is_quarantined_like_an_order(self, executor: ThreadPoolExecutor) -> None:
        relay, quarantine = refund_relay(executor, FakeRefundPath(Outcome.REJECTED), enabled=True)
        relay.handle(batch(order("R-3", event="Order Refunded")), lambda_context())
        [(_, result)] = quarantine.sent
        assert (result.outcome, result.kind) == (Outcome.REJECTED, RecordKind.REFUND)

    def test_an_order_still_goes_to_the_order_path_when_refunds_are_on(
        self, executor: ThreadPoolExecutor
    ) -> None:
        path = FakeRefundPath()
        relay, _ = refund_relay(executor, path, enabled=True)
        relay.handle(batch(order("R-4")), lambda_context())
        assert path.calls == []


def test_a_record_s_write_deadline_is_its_budget_less_the_aws_calls_that_follow() -> None:
    # Given a record budget of 34 s (the template's 10 s timeout), when a record starts now
    deadline = Deadline(lambda_context(remaining_ms=60_000), 34_000)
    before = time.monotonic()
    until = deadline.for_record_starting_now()
    # Then its order-state writes may be retried for 34 s less three 2 s AWS calls (done-mark, quarantine,
    # pacing), so the record still ends within its budget
    assert before + 28 <= until <= time.monotonic() + 28
