"""The relay as deployed, end to end on the local topology: bus -> rule -> queue -> poller -> handler ->
Refersion sandbox, with the dead-letter queue and the idempotency table (CONTRACT §2, §5, §6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from local.lambda_shapes import load_event
from local.poller import EventSourceMapping, RecordReport
from local.sandbox import Reply
from local.seed import seed_body
from local.stack import LocalStack
from tests.support.events import order, track
from tests.support.keys import PUBLIC_KEY, SECRET_KEY

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DRAIN_TIMEOUT = 40.0


def final_records(mapping: EventSourceMapping) -> dict[str, RecordReport]:
    """EventBridge event id -> the last record the handler saw for it."""
    last: dict[str, RecordReport] = {}
    for record in mapping.records():
        last[record.envelope_id() or record.message_id] = record
    return last


def attempts(mapping: EventSourceMapping) -> dict[str, list[RecordReport]]:
    seen: dict[str, list[RecordReport]] = defaultdict(list)
    for record in mapping.records():
        seen[record.envelope_id() or record.message_id].append(record)
    return seen


def attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return None if value is None else str(value["StringValue"])


def test_mixed_traffic_is_delivered_once_quarantined_or_filtered_and_nothing_is_lost(
    stack: LocalStack,
) -> None:
    # Given 40 events on the order events bus: valid orders (some meeting transient failures once),
    # a repeated order, orders Refersion rejects, invalid orders, a consent refusal, an identify call
    # named like an order, and events that are not orders at all
    delivered_ids = [f"90{n:04d}" for n in range(20)]
    failing_once = {
        delivered_ids[0]: Reply(status=503),
        delivered_ids[1]: Reply(status=503),
        delivered_ids[2]: Reply(status=429, headers={"Retry-After": "1"}),
        delivered_ids[3]: Reply(status=429, headers={"Retry-After": "1"}),
        delivered_ids[4]: Reply(drop="before"),
    }
    names = ["Order Completed", "order_completed", "ORDER COMPLETED", "Order_Completed", "oRdEr CoMpLeTeD"]
    valid = [order(order_id, event=names[n % len(names)]) for n, order_id in enumerate(delivered_ids)]
    repeated = order(delivered_ids[10])  # the same order published a second time
    rejected_ids = ["910001", "910002", "910003"]
    rejected = [order(order_id) for order_id in rejected_ids]
    invalid = [
        order("920001", currency=None),
        order("920002", products=[{"sku": "A", "price": "$5.50", "quantity": 1}]),
        order("920003", products=[]),
        order("920004", products=[{"sku": "A", "price": 5, "quantity": 0}]),
        order("920005", cart_id=""),
    ]
    invalid_ids = ["920001", "920002", "920003", "920004", "920005"]
    skipped = order("930001")
    skipped["context"]["consent"] = {"marketing": False}
    dropped = {"type": "identify", "event": "Order Completed", "userId": "user_9", "traits": {"plan": "pro"}}
    filtered = [
        load_event("datafly/page-view.json"),
        track("Product Viewed"),
        track("Checkout Started"),
        track("Order Refunded"),
        track("Order Cancelled"),
        track("Order Completed Refund"),
        track("Cart Viewed"),
        {"type": "identify", "userId": "user_1", "traits": {"email": "someone@example.org"}},
        {"type": "screen", "name": "Home"},
    ]
    events = [*valid, repeated, *rejected, *invalid, skipped, dropped, *filtered]
    assert len(events) == 40
    for order_id, reply in failing_once.items():
        stack.sandbox.script_for(order_id, reply)
    for order_id in rejected_ids:
        stack.sandbox.script_for(order_id, Reply(status=422, body=b'{"error": "Order rejected"}'))

    # When they are published and the event source runs until the queue is drained
    event_ids = stack.publish_all(events)
    mapping = stack.mapping()
    mapping.run_until_drained(DRAIN_TIMEOUT)

    # Then every valid order reached Refersion exactly once, retries included
    assert sorted(stack.sandbox.accepted_order_ids()) == sorted(delivered_ids)
    assert stack.sandbox.duplicates() == {}
    # ... the ones that failed once were retried through SQS (receive count 2) and then delivered
    seen = attempts(mapping)
    by_order = {
        str(e.get("properties", {}).get("order_id")): i for e, i in zip(events, event_ids, strict=True)
    }
    for order_id in failing_once:
        first, second = seen[by_order[order_id]]
        assert (first.outcome, first.acknowledged, second.outcome) == ("retry", False, "delivered")
        assert (first.receive_count, second.receive_count) == (1, 2)
    retry_after = [
        r for r in mapping.invocations if any(rec.order_id == delivered_ids[2] for rec in r.records)
    ]
    assert retry_after[1].started_at - retry_after[0].started_at >= 1.0  # Retry-After: 1 honoured

    # ... every invalid or rejected one is in the dead-letter queue, unchanged, saying why
    dead_letters = stack.take_dead_letters()
    bodies = {record.message_id: record.body for record in mapping.records()}
    quarantined = {str(attribute(m, "order_id")): m for m in dead_letters}
    assert sorted(quarantined) == sorted(rejected_ids + invalid_ids)
    for message in dead_letters:
        assert attribute(message, "reason")
        assert message["Body"] == bodies[str(attribute(message, "source_record_id"))]
    assert {attribute(quarantined[i], "outcome") for i in rejected_ids} == {"rejected"}
    assert {attribute(quarantined[i], "http_status") for i in rejected_ids} == {"422"}
    assert {attribute(quarantined[i], "outcome") for i in invalid_ids} == {"invalid"}

    # ... events that are not orders never reached the queue, let alone Refersion
    assert not {event_ids[events.index(e)] for e in filtered} & set(seen)
    assert {r.order_id for r in stack.sandbox.received()} <= set(delivered_ids + rejected_ids)

    # ... and every published event is accounted for exactly once
    finals = final_records(mapping)
    outcomes = Counter(finals[i].outcome if i in finals else "filtered" for i in event_ids)
    assert outcomes == {
        "delivered": 20,
        "duplicate": 1,
        "rejected": 3,
        "invalid": 5,
        "skipped": 1,
        "dropped": 1,
        "filtered": 9,
    }
    assert sum(outcomes.values()) == len(events)
    assert all(record.acknowledged for record in finals.values())
    assert stack.queue_depth().total == 0


@pytest.fixture
def stack_with_immediate_retries() -> Iterator[LocalStack]:
    """The deployed queue and event source, with the handler's retry pacing at zero.

    Pacing spaces a record's receives; it does not change how many there are or what SQS does after
    the last one. At 0 s, 12 receives take ~12 s (one batching window each) instead of ~25 s.
    """
    overrides = {"RETRY_BASE_DELAY_SECONDS": "0", "RETRY_MAX_DELAY_SECONDS": "0"}
    with LocalStack(public_key=PUBLIC_KEY, secret_key=SECRET_KEY, overrides=overrides) as running:
        yield running
    assert running.left_behind == []


def test_an_order_refused_every_time_moves_to_the_dlq_after_the_templates_max_receive_count(
    stack_with_immediate_retries: LocalStack,
) -> None:
    stack = stack_with_immediate_retries
    # Given the queue as deployed (maxReceiveCount from template.yaml) and an order Refersion always
    # answers 503
    max_receives = stack.settings.max_receive_count
    attributes = stack.aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources.queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == max_receives
    stack.sandbox.script_for("940001", *[Reply(status=503)] * (max_receives + 5))
    event_id = stack.publish(order("940001"))

    # When the event source runs until the queue is drained
    mapping = stack.mapping()
    mapping.run_until_drained(DRAIN_TIMEOUT)

    # Then the handler saw it exactly maxReceiveCount times, each time reporting it for retry ...
    seen = attempts(mapping)[event_id]
    assert [r.receive_count for r in seen] == list(range(1, max_receives + 1))
    assert {(r.outcome, r.acknowledged) for r in seen} == {("retry", False)}
    assert len(stack.sandbox.received()) == max_receives
    assert stack.sandbox.accepted_order_ids() == []
    # ... and SQS itself moved the message to the dead-letter queue: same message, body unchanged, and
    # none of the attributes the handler's own quarantine adds
    [dead_letter] = stack.take_dead_letters()
    assert dead_letter["MessageId"] == seen[0].message_id
    assert dead_letter["Body"] == seen[0].body
    assert attribute(dead_letter, "outcome") is None
    assert int(dead_letter["Attributes"]["ApproximateReceiveCount"]) > max_receives


def test_the_demo_runs_by_itself_and_shows_what_happened() -> None:
    # Given a clean environment, as `make demo` has (no PYTHONPATH, nothing pointing at AWS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AWS_")}
    # When the demo runs as a program
    done = subprocess.run(
        [sys.executable, "-m", "local.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # it stops everything and exits by itself
        check=False,
    )
    # Then it succeeded, printed the table, the seed's body and the DLQ, and nothing else
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "order id" in out
    assert "filtered by the rule" in out
    assert "retry (Refersion answered 503), then delivered" in out
    assert "Dead-letter queue: 1 message(s)" in out
    assert "no thread or listening socket left behind" in out
    body = out.split("Body Refersion received for the seed's example", 1)[1].split(":\n", 1)[1]
    body = body.split("\n\nDead-letter queue", 1)[0]
    assert json.loads(body, parse_float=Decimal) == seed_body()
    assert '"level"' not in out  # no raw log lines
    assert '"_aws"' not in out  # no EMF metric documents
    assert done.stderr == ""
    assert_the_demo_showed_the_refunds(out)
    assert_the_demo_showed_the_confirmed_order(out)


def section(out: str, title: str) -> list[str]:
    """The lines printed under a title, up to the next blank line."""
    return out.split(title, 1)[1].split("\n\n", 1)[0].splitlines()[1:]


def assert_the_demo_showed_the_refunds(out: str) -> None:
    # Issue 11: a partial refund of the seed's order and a full cancellation of the order refused once,
    # each applied with one cancel call ...
    rows = [line.split() for line in out.splitlines() if "cancelled at Refersion (1 call(s))" in line]
    assert [row[:5] for row in rows] == [
        ["20150401102883", "Order", "Refunded", "delivered", "1"],
        ["20150401102999", "Order", "Cancelled", "delivered", "1"],
    ]
    # ... whose bodies Refersion received exactly as its cancel API documents them (SPEC §9) ...
    bodies = [
        json.loads(line, parse_float=Decimal) for line in section(out, "Cancel bodies Refersion received")
    ]
    assert sorted(bodies, key=lambda body: body["order_id"]) == [
        {"order_id": "20150401102883", "items": [{"sku": "PROD_A", "price": Decimal("5.5"), "quantity": 1}]},
        {
            "order_id": "20150401102999",
            "items": [
                {"sku": "PROD_B", "price": Decimal("12.0"), "quantity": 1},
                {"sku": "PROD_C", "price": Decimal("3.25"), "quantity": 3},
            ],
        },
    ]
    # ... so that what Refersion credits is what was ordered less what was refunded
    assert section(out, "Net quantity per order at Refersion") == [
        "  20150401102883  PROD_A: 2 ordered - 1 refunded = 1",
        "  20150401102999  PROD_B: 1 ordered - 1 refunded = 0; PROD_C: 3 ordered - 3 refunded = 0",
        "  20150401103001  PROD_A: 2 ordered - 0 refunded = 2",
    ]


def assert_the_demo_showed_the_confirmed_order(out: str) -> None:
    # Issue 12: the post went unanswered, the record came back and found Refersion's confirmation ...
    story = section(out, "Issue 12: an unanswered post resolved by its confirmation")
    assert "  attempt 1: retry, maybe received (connection dropped before an answer)" in story
    assert any(
        line.startswith("  attempt 2: delivered (confirmed by Refersion (conversion ") for line in story
    )
    assert not any(line.startswith("  attempt 3") for line in story)
    assert any(line.endswith("-> the receiver answered 200 (stored)") for line in story)
    # ... and Refersion received that order's post once: no second post
    assert story[-1] == "  Refersion received 1 post(s) for order 20150401103001."
    assert "<token>" in story[0]  # the token itself is never printed
