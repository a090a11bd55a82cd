"""The relay's routing (handler.relay): each record to the one outcome of CONTRACT §5's table, with fakes.

The ports (keys, poster, quarantine, ledger, pacer) are the in-memory fakes of tests.support.fakes; the
rest (triggers, decision, mapping, delivery, outcome lines) is the real code. No socket is opened.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from handler.config import Settings
from handler.delivery import Deliverer
from handler.outcomes import Outcome
from handler.relay import Deadline, Relay, RetryLater
from handler.triggers import InboundRecord, UnsupportedTrigger
from local.lambda_shapes import eventbridge_envelope, sqs_event
from tests.support.events import as_eventbridge_body, failures, order, track
from tests.support.fakes import (
    KEYS,
    ROTATED_KEYS,
    FakeKeyPairs,
    InMemoryLedger,
    RecordingPacer,
    RecordingQuarantine,
    ScriptedPoster,
    answer,
    no_answer,
)
from tests.support.lambda_context import lambda_context

SETTINGS = Settings.from_env(
    {"REFERSION_SECRET_ID": "refersion/keys", "DEAD_LETTER_QUEUE_URL": "https://sqs.example/dlq"}
)


@dataclass
class Edge:
    """The relay wired to fakes, and the fakes to look at afterwards."""

    relay: Relay
    keys: FakeKeyPairs
    poster: ScriptedPoster
    quarantine: RecordingQuarantine
    ledger: InMemoryLedger
    pacer: RecordingPacer

    def batch(
        self, *events: dict[str, Any], remaining_ms: float = 60_000
    ) -> tuple[dict[str, Any], list[str]]:
        """Invoke with an SQS batch of these events; the response and the batch's message ids."""
        event = sqs_event(*(as_eventbridge_body(item) for item in events))
        response = self.relay.handle(event, lambda_context(remaining_ms=remaining_ms))
        return response, [record["messageId"] for record in event["Records"]]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def edge(executor: ThreadPoolExecutor) -> Edge:
    keys, poster = FakeKeyPairs(), ScriptedPoster(answer(200))
    quarantine, ledger, pacer = RecordingQuarantine(), InMemoryLedger(), RecordingPacer()
    relay = Relay(
        settings=SETTINGS,
        deliverer=Deliverer(keys, poster),
        quarantine=quarantine,
        ledger=ledger,
        pacer=pacer,
        executor=executor,
    )
    return Edge(relay, keys, poster, quarantine, ledger, pacer)


def outcome_lines(relay_logs: io.StringIO) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in relay_logs.getvalue().splitlines() if line.startswith("{"))
    return [line for line in lines if "outcome" in line]


class TestSqsBatch:
    def test_an_order_answered_2xx_is_delivered_once_and_acknowledged(
        self, edge: Edge, relay_logs: io.StringIO
    ) -> None:
        # Given Refersion answers 200
        # When a batch with one order comes in
        response, _ = edge.batch(order("A-1"))
        # Then it is posted once, acknowledged, remembered, and logged as delivered
        assert failures(response) == []
        assert [json.loads(body)["order_id"] for body in edge.poster.bodies] == ["A-1"]
        assert list(edge.ledger.delivered) == ["A-1"]
        [line] = outcome_lines(relay_logs)
        assert (line["outcome"], line["http_status"], line["attempts"]) == ("delivered", 200, 1)

    def test_a_5xx_answer_sends_the_record_back_for_a_paced_retry(self, edge: Edge) -> None:
        edge.poster.answer_with(answer(503))
        response, ids = edge.batch(order("A-2"))
        assert failures(response) == ids
        [[(inbound, result)]] = edge.pacer.paced
        assert (inbound.record_id, result.outcome, result.http_status) == (ids[0], Outcome.RETRY, 503)
        assert edge.ledger.delivered == {}  # not remembered: the retry will post it again

    def test_a_4xx_answer_is_rejected_and_set_aside_with_its_original_body(self, edge: Edge) -> None:
        edge.poster.answer_with(answer(422, "bad currency"))
        event = order("A-3")
        response, _ = edge.batch(event)
        assert failures(response) == []
        [(body, result)] = edge.quarantine.sent
        assert json.loads(body)["detail"] == event
        assert result.outcome is Outcome.REJECTED
        assert result.reason == "Refersion answered 422: bad currency"

    def test_an_invalid_order_is_set_aside_and_never_posted(self, edge: Edge) -> None:
        response, _ = edge.batch(order("A-4", currency="dollars"))
        assert failures(response) == []
        assert edge.poster.posts == []
        [(_, result)] = edge.quarantine.sent
        assert (result.outcome, result.order_id) == (Outcome.INVALID, "A-4")
        assert "properties.currency" in result.reason

    def test_an_event_that_is_not_an_order_is_dropped_without_post_or_quarantine(
        self, edge: Edge, relay_logs: io.StringIO
    ) -> None:
        response, _ = edge.batch(track("Product Viewed"))
        assert failures(response) == []
        assert (edge.poster.posts, edge.quarantine.sent) == ([], [])
        [line] = outcome_lines(relay_logs)
        assert line["outcome"] == "dropped"
        assert line["order_id"] == "x"  # the id is still read for the log line

    def test_an_order_whose_consent_is_denied_is_skipped(self, edge: Edge, relay_logs: io.StringIO) -> None:
        event = order("A-5")
        event["context"]["consent"] = {"marketing": "denied"}
        response, _ = edge.batch(event)
        assert failures(response) == []
        assert (edge.poster.posts, edge.quarantine.sent) == ([], [])
        [line] = outcome_lines(relay_logs)
        assert (line["outcome"], line["reason"]) == ("skipped", "consent for marketing denied")

    def test_an_order_already_delivered_is_a_duplicate_and_not_posted_again(
        self, edge: Edge, relay_logs: io.StringIO
    ) -> None:
        edge.batch(order("A-6"))
        response, _ = edge.batch(order("A-6"))
        assert failures(response) == []
        assert len(edge.poster.posts) == 1
        assert [line["outcome"] for line in outcome_lines(relay_logs)] == ["delivered", "duplicate"]

    def test_refused_keys_are_read_again_once_and_the_post_repeated_with_the_new_pair(
        self, edge: Edge
    ) -> None:
        # Given the key pair was rotated in Secrets Manager and the cached one is now refused
        edge.keys.rotate()
        edge.poster.answer_with(answer(401), answer(200))
        # When an order comes in
        response, _ = edge.batch(order("A-7"))
        # Then it is delivered with the rotated pair on the second post
        assert failures(response) == []
        assert [keys for _, keys in edge.poster.posts] == [KEYS, ROTATED_KEYS]

    def test_unreadable_keys_send_the_record_back_without_posting(self, edge: Edge) -> None:
        edge.keys.fail()
        response, ids = edge.batch(order("A-8"))
        assert failures(response) == ids
        assert edge.poster.posts == []

    def test_a_post_without_an_answer_is_retried_and_said_maybe_received(
        self, edge: Edge, relay_logs: io.StringIO
    ) -> None:
        edge.poster.answer_with(no_answer())
        response, ids = edge.batch(order("A-9"))
        assert failures(response) == ids
        [line] = outcome_lines(relay_logs)
        assert (line["outcome"], line["maybe_received"]) == ("retry", True)

    def test_a_failed_quarantine_sends_the_record_back_instead_of_losing_it(self, edge: Edge) -> None:
        edge.quarantine.failing = True
        response, ids = edge.batch(order("A-10", currency="dollars"))
        assert failures(response) == ids
        [[(_, result)]] = edge.pacer.paced
        assert result.outcome is Outcome.RETRY
        assert result.reason.startswith("invalid: properties.currency")
        assert result.reason.endswith("dead-letter queue send failed (EndpointConnectionError)")

    def test_a_defect_while_relaying_sends_the_record_back(self, edge: Edge, relay_logs: io.StringIO) -> None:
        edge.poster.answer_with(RuntimeError("a bug"))
        response, ids = edge.batch(order("A-11"))
        assert failures(response) == ids
        [line] = outcome_lines(relay_logs)
        assert (line["outcome"], line["reason"]) == ("retry", "unexpected error (RuntimeError)")
        assert "unexpected error while relaying a record" in relay_logs.getvalue()

    def test_only_the_records_to_retry_come_back_from_a_mixed_batch(self, edge: Edge) -> None:
        edge.poster.answer_with(answer(200), answer(503))
        response, ids = edge.batch(order("B-1"), track("Page Viewed"), order("B-2"))
        # The batch is handled in order on a pool of two: B-1 or B-2 may post first.
        assert len(failures(response)) == 1
        assert failures(response)[0] in (ids[0], ids[2])

    def test_records_near_the_timeout_are_not_posted_and_come_back(self, edge: Edge) -> None:
        # Given less time left than one record may need (2 x 10 s timeout + 2 s)
        response, ids = edge.batch(order("C-1"), order("C-2"), remaining_ms=5_000)
        # Then no record is posted and every one comes back
        assert sorted(failures(response)) == sorted(ids)
        assert edge.poster.posts == []


def test_a_record_not_started_near_the_timeout_is_a_retry_marked_not_started(
    edge: Edge, relay_logs: io.StringIO
) -> None:
    # Given a deadline that no longer allows a record to start
    deadline = Deadline(lambda_context(remaining_ms=1_000), SETTINGS.record_budget_seconds * 1000)
    inbound = InboundRecord(record_id="m-1", raw_body=as_eventbridge_body(order("C-3")))
    # When the record comes up
    result = edge.relay.relay_record(inbound, deadline)
    # Then it is a retry that was never attempted, and its log line says so
    assert (result.outcome, result.started) == (Outcome.RETRY, False)
    assert edge.poster.posts == []
    [line] = outcome_lines(relay_logs)
    assert line["started"] is False


class TestEventBridgeDirect:
    def test_a_delivered_event_returns_its_outcome(self, edge: Edge) -> None:
        result = edge.relay.handle(eventbridge_envelope(order("E-1")), lambda_context())
        assert result == {"outcome": "delivered", "order_id": "E-1"}

    def test_an_event_to_retry_fails_the_invocation_so_lambda_retries_it(self, edge: Edge) -> None:
        edge.poster.answer_with(answer(429))
        envelope = eventbridge_envelope(order("E-2"))
        with pytest.raises(RetryLater, match=f"event {envelope['id']}: Refersion answered 429"):
            edge.relay.handle(envelope, lambda_context())

    def test_an_invalid_event_is_set_aside_whole_and_returns(self, edge: Edge) -> None:
        envelope = eventbridge_envelope(order("E-3", currency="dollars"))
        assert edge.relay.handle(envelope, lambda_context())["outcome"] == "invalid"
        [(body, _)] = edge.quarantine.sent
        assert json.loads(body) == envelope


def test_anything_but_an_sqs_batch_or_an_eventbridge_event_is_refused(edge: Edge) -> None:
    with pytest.raises(UnsupportedTrigger):
        edge.relay.handle({"hello": "world"}, lambda_context())


def test_the_invocation_context_reaches_the_ledger(edge: Edge) -> None:
    context = lambda_context()
    edge.relay.handle(sqs_event(), context)
    assert edge.ledger.contexts[-1] is context
