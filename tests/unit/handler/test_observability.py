"""The one outcome line per record (handler.observability): its fields, its level, no raw personal data."""

from __future__ import annotations

import io
import json

import pytest

from handler.observability import metric_name, outcome_fields, report_outcome
from handler.outcomes import Outcome, RecordKind, RecordResult


def test_a_delivered_line_carries_the_ids_status_and_latency_and_nothing_empty() -> None:
    result = RecordResult(
        "m-1", Outcome.DELIVERED, order_id="O-1", http_status=200, latency_ms=51.34, attempts=1
    )
    assert outcome_fields(result) == {
        "record_id": "m-1",
        "outcome": "delivered",
        "kind": "order",
        "order_id": "O-1",
        "http_status": 200,
        "latency_ms": 51.3,
        "attempts": 1,
    }


def test_not_started_is_said_only_of_a_retry_that_was_never_attempted() -> None:
    assert "started" not in outcome_fields(
        RecordResult("m-1", Outcome.RETRY, reason="Refersion answered 503")
    )
    not_started = RecordResult("m-1", Outcome.RETRY, reason="not started", started=False)
    assert outcome_fields(not_started)["started"] is False


def test_refunds_are_counted_under_metric_names_of_their_own_and_orders_keep_theirs() -> None:
    # Given the same outcome for an order and for a refund
    order = RecordResult("m-1", Outcome.DELIVERED)
    refund = RecordResult("m-2", Outcome.DELIVERED, kind=RecordKind.REFUND)
    # Then the order's metric keeps its existing name, the refund's is its own; both lines say the kind
    assert (metric_name(order), metric_name(refund)) == ("delivered", "refund_delivered")
    assert outcome_fields(refund)["kind"] == "refund"


def test_waiting_is_its_own_metric_so_the_retries_alarm_stays_quiet() -> None:
    waiting = RecordResult("m-1", Outcome.WAITING, wait_seconds=600)
    assert metric_name(waiting) == "waiting"
    assert outcome_fields(waiting)["wait_seconds"] == 600
    assert waiting.outcome.comes_back
    assert not waiting.outcome.quarantined


def test_maybe_received_is_said_only_when_true() -> None:
    assert "maybe_received" not in outcome_fields(RecordResult("m-1", Outcome.RETRY))
    assert outcome_fields(RecordResult("m-1", Outcome.RETRY, maybe_received=True))["maybe_received"] is True


@pytest.mark.parametrize(
    ("outcome", "level"),
    [
        (Outcome.DELIVERED, "INFO"),
        (Outcome.DUPLICATE, "INFO"),
        (Outcome.DROPPED, "INFO"),
        (Outcome.SKIPPED, "INFO"),
        (Outcome.RETRY, "WARNING"),
        (Outcome.INVALID, "WARNING"),
        (Outcome.REJECTED, "WARNING"),
    ],
)
def test_records_that_need_attention_are_logged_as_warnings(
    outcome: Outcome, level: str, relay_logs: io.StringIO
) -> None:
    report_outcome(RecordResult("m-1", outcome))
    [line] = [json.loads(text) for text in relay_logs.getvalue().splitlines()]
    assert (line["message"], line["level"]) == (f"record {outcome.value}", level)
