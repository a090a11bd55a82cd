"""Issue 13: what each AWS-side fault does to an order, through the real handler.

The relay's boto3 clients reach moto through the fault-injecting proxy (local/aws_faults.py), by
AWS_ENDPOINT_URL only. botocore makes ONE attempt per call (handler/budget.py): a call that fails before
the post makes the record's outcome retry, and SQS brings it back; the order-state writes after a post
are retried by the relay itself until the record's deadline (handler/aws_retry.py). For each service and
fault: the record's first outcome, how many times the order reached the sandbox, and what its next
delivery (the same SQS message coming back, or a re-published copy) does. The guarantee every test holds
to: each record ends in one outcome and comes back while not finished; an order is posted at most once
but in the no-answer window or a counted "delivered but not recorded"; a quarantined record is never
posted again.

DynamoDB calls of a delivered record, in order: PutItem (Powertools' in-progress record, key
"refersion-order#..."), UpdateItem x2 (order state "order-state#...": seen, post began), the POST,
UpdateItem (order state: delivered, retried), UpdateItem (Powertools' done mark); DeleteItem (Powertools
forgets the attempt) instead of the done mark when the order was not delivered.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from handler.budget import record_budget_seconds
from local.aws_faults import AwsFaultProxy, FaultRule
from local.lambda_shapes import FakeLambdaContext, sqs_record
from local.sandbox import Reply
from tests.support.events import as_eventbridge_body, failures, order
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration

# Faults that answer the call without it taking effect.
NOT_TAKEN = ["throttle", "500", "503", "drop"]
# Powertools' idempotency records, the order state's delivered write (tests/conftest.py sets
# REFERSION_TIMEOUT_SECONDS=1): request texts that pick them out of the table's UpdateItem calls.
POWERTOOLS_RECORD = "refersion-order#"
ORDER_STATE = "order-state#"
DELIVERED_WRITE = "#delivered_at = :at"
# A record starts only with its whole budget left (2 x 1 s + 26 s), and Powertools' in-progress record
# lasts the invocation's remaining time: the tests that wait for that window give just above the budget.
# (2 s more than the budget: building the relay on a busy machine takes some of it).
WINDOW_MS = record_budget_seconds(1.0) * 1000 + 2_000
ANOTHER_INVOCATION = "another invocation is delivering this order right now"


@dataclass
class Faulty:
    """The relay, its AWS calls through the proxy, and what one record did."""

    env: RelayEnv
    proxy: AwsFaultProxy
    logs: io.StringIO

    def fault(
        self, service: str, operation: str, fault: str, times: int | None = None, only: str | None = None
    ) -> None:
        self.proxy.set_rules([FaultRule(service, operation, fault, times=times, request_contains=only)])

    def run(
        self, body: str, *, remaining_ms: float = 60_000, message_id: str | None = None
    ) -> tuple[str, list[str]]:
        """One invocation on one SQS message (the same `message_id` is SQS bringing it back): its
        outcome and the ids handed back to SQS."""
        before = len(self.logs.getvalue().splitlines())
        event = {"Records": [sqs_record(body, message_id=message_id)]}
        response = self.env.invoke(event, FakeLambdaContext(remaining_ms=remaining_ms))
        lines = [
            json.loads(line) for line in self.logs.getvalue().splitlines()[before:] if line.startswith("{")
        ]
        [outcome] = [str(line["outcome"]) for line in lines if "outcome" in line and "record_id" in line]
        return outcome, failures(response)

    def posts(self, order_id: str) -> int:
        return sum(1 for r in self.env.sandbox.received() if r.order_id == order_id)

    def accepted(self, order_id: str) -> int:
        return self.env.sandbox.accepted_order_ids().count(order_id)

    def dead_letters(self) -> list[dict[str, Any]]:
        sqs = self.env.aws.client("sqs")
        found: list[dict[str, Any]] = []
        while batch := sqs.receive_message(
            QueueUrl=self.env.resources.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            found.extend(batch)
        return found

    def warned(self, text: str) -> bool:
        return text in self.logs.getvalue()

    def faults(self) -> int:
        return sum(self.proxy.faults_injected().values())


@pytest.fixture
def faulty(relay_env: RelayEnv, relay_logs: io.StringIO) -> Iterator[Faulty]:
    with AwsFaultProxy(relay_env.aws.endpoint_url, seed=13) as proxy:
        relay_env.set(AWS_ENDPOINT_URL=proxy.url, IDEMPOTENCY_TABLE_NAME=relay_env.resources.table_name)
        yield Faulty(relay_env, proxy, relay_logs)


def _body(order_id: str, **changes: Any) -> str:
    return as_eventbridge_body(order(order_id, **changes))


def _invalid_body(order_id: str) -> str:
    return _body(order_id, products=[{"sku": "A", "name": "A", "price": "$5.50", "quantity": 1}])


def _sleep_past_window(started: float) -> None:
    time.sleep(max(0.0, WINDOW_MS / 1000 + 0.5 - (time.monotonic() - started)))


# ---------------------------------------------------------------- Secrets Manager


@pytest.mark.parametrize("fault", [*NOT_TAKEN, "throttle_after"])
def test_an_unreadable_key_pair_leaves_the_order_to_retry_and_it_is_delivered_once_later(
    faulty: Faulty, fault: str
) -> None:
    # Given GetSecretValue failing (a cold relay: nothing cached)
    faulty.fault("secretsmanager", "GetSecretValue", fault)
    body = _body("SM-1")
    # When a record comes: one attempt (botocore retries nothing), the record is retried, nothing posted
    assert faulty.run(body, message_id="m-SM-1")[0] == "retry"
    assert faulty.posts("SM-1") == 0
    assert faulty.proxy.faults_injected() == {("secretsmanager", "GetSecretValue", fault): 1}
    # Then, once Secrets Manager answers again, the message coming back is delivered, once
    faulty.proxy.clear_rules()
    assert faulty.run(body, message_id="m-SM-1") == ("delivered", [])
    assert faulty.accepted("SM-1") == 1


# ---------------------------------------------------------------- DynamoDB: Powertools' in-progress record


@pytest.mark.parametrize("fault", NOT_TAKEN)
def test_an_in_progress_record_that_cannot_be_written_leaves_the_order_unposted_for_a_retry(
    faulty: Faulty, fault: str
) -> None:
    # Given PutItem (the in-progress record) failing
    faulty.fault("dynamodb", "PutItem", fault)
    body = _body("DP-1")
    # When a record comes, it is retried without a post
    assert faulty.run(body)[0] == "retry"
    assert faulty.posts("DP-1") == 0
    # Then it is delivered once when it comes back
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DP-1") == 1


# The window tests wait a whole record budget (~28 s) each: one fault kind apiece in the suite.
@pytest.mark.parametrize("fault", ["drop_after"])
def test_an_in_progress_record_written_without_an_answer_holds_the_order_until_its_window_passes(
    faulty: Faulty, fault: str
) -> None:
    # Given PutItem taking effect, its answer lost: the relay, told it failed, retries the record
    faulty.fault("dynamodb", "PutItem", fault)
    body = _body("DP-2")
    started = time.monotonic()
    assert faulty.run(body, remaining_ms=WINDOW_MS)[0] == "retry"
    # When it comes back within the in-progress window, it meets its own record: retried, not posted
    faulty.proxy.clear_rules()
    assert faulty.run(body, remaining_ms=WINDOW_MS)[0] == "retry"
    assert faulty.warned(ANOTHER_INVOCATION)
    assert faulty.posts("DP-2") == 0
    # Then, once the window has passed, it is delivered once
    _sleep_past_window(started)
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DP-2") == 1


# ---------------------------------------------------------------- DynamoDB: the order state


@pytest.mark.parametrize("fault", ["throttle", "503", "drop", "drop_after"])
def test_an_order_state_that_cannot_be_written_before_the_post_leaves_the_order_unposted_for_a_retry(
    faulty: Faulty, fault: str
) -> None:
    # Given the order state's writes failing (the first is "seen", tried once before anything is posted)
    faulty.fault("dynamodb", "UpdateItem", fault, only=ORDER_STATE)
    body = _body("OS-1")
    # When a record comes, it is retried without a post
    assert faulty.run(body)[0] == "retry"
    assert faulty.posts("OS-1") == 0
    # Then it is delivered once when it comes back
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("OS-1") == 1


@pytest.mark.parametrize("fault", ["throttle", "503", "drop", "drop_after"])
def test_a_delivered_write_that_fails_after_the_post_is_retried_by_the_relay_and_the_order_stays_once(
    faulty: Faulty, fault: str
) -> None:
    # Given the order state's "delivered" write failing three times after the post
    faulty.fault("dynamodb", "UpdateItem", fault, times=3, only=DELIVERED_WRITE)
    body = _body("OS-2")
    # When a record comes, the relay retries that write itself until it is written: delivered
    assert faulty.run(body) == ("delivered", [])
    assert faulty.faults() == 3
    assert not faulty.warned("delivered but not recorded")
    # Then a copy is a duplicate, never posted again
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("duplicate", [])
    assert faulty.accepted("OS-2") == 1


def test_a_delivered_write_answered_after_the_read_timeout_is_retried_and_the_order_stays_once(
    faulty: Faulty,
) -> None:
    # Given one "delivered" write held past the relay's 1 s read timeout (it reaches DynamoDB late)
    faulty.fault("dynamodb", "UpdateItem", "slow", times=1, only=DELIVERED_WRITE)
    body = _body("OS-3")
    # When the record comes, the relay's own retry writes it: delivered, and a copy is a duplicate
    assert faulty.run(body) == ("delivered", [])
    assert faulty.run(body) == ("duplicate", [])
    assert faulty.accepted("OS-3") == 1


# ---------------------------------------------------------------- DynamoDB: Powertools' done mark


@pytest.mark.parametrize("fault", ["503"])
def test_a_done_mark_that_cannot_be_written_is_covered_by_the_order_state_and_a_later_copy_is_a_duplicate(
    faulty: Faulty, fault: str
) -> None:
    # Given Powertools' done mark (its UpdateItem) failing after a successful post
    faulty.fault("dynamodb", "UpdateItem", fault, only=POWERTOOLS_RECORD)
    body = _body("DU-1")
    started = time.monotonic()
    # When the record comes, the order is delivered and acknowledged, and the relay says so
    assert faulty.run(body, remaining_ms=WINDOW_MS) == ("delivered", [])
    assert faulty.warned("order delivered but not recorded in the idempotency table")
    # ... a copy within the in-progress window is retried (Powertools' record still says in progress)
    faulty.proxy.clear_rules()
    assert faulty.run(body)[0] == "retry"
    assert faulty.warned(ANOTHER_INVOCATION)
    # Then a copy after the window is a duplicate from the order state: never posted again
    _sleep_past_window(started)
    assert faulty.run(body) == ("duplicate", [])
    assert faulty.accepted("DU-1") == 1
    assert faulty.posts("DU-1") == 1


@pytest.mark.parametrize("fault", ["throttle_after", "drop_after"])
def test_a_done_mark_written_without_an_answer_still_stops_a_later_copy(faulty: Faulty, fault: str) -> None:
    # Given Powertools' done mark taking effect, its answer lost
    faulty.fault("dynamodb", "UpdateItem", fault, only=POWERTOOLS_RECORD)
    body = _body("DU-2")
    assert faulty.run(body) == ("delivered", [])
    # When a copy comes, it is a duplicate: never posted again
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("duplicate", [])
    assert faulty.accepted("DU-2") == 1


def test_an_order_recorded_nowhere_after_its_post_is_counted_and_only_then_can_a_later_copy_be_posted_again(
    faulty: Faulty, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given both records of a delivery failing after the post: the order state's "delivered" write
    # (until the record's deadline) and Powertools' done mark
    faulty.proxy.set_rules(
        [
            FaultRule("dynamodb", "UpdateItem", "503", request_contains=DELIVERED_WRITE),
            FaultRule("dynamodb", "UpdateItem", "503", request_contains=POWERTOOLS_RECORD),
        ]
    )
    body = _body("DN-1")
    started = time.monotonic()
    # When the record comes, it is delivered (posting again would credit it twice), logged and counted
    assert faulty.run(body, remaining_ms=WINDOW_MS) == ("delivered", [])
    assert faulty.warned("order delivered but not recorded in the order state")
    assert '"delivered_not_recorded"' in capsys.readouterr().out
    # Then a copy after the window is posted again: the one duplicate an AWS fault can cause, counted
    faulty.proxy.clear_rules()
    _sleep_past_window(started)
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DN-1") == 2


@pytest.mark.parametrize("fault", ["drop"])
def test_a_not_delivered_order_whose_in_progress_record_cannot_be_deleted_is_delivered_after_its_window(
    faulty: Faulty, fault: str
) -> None:
    # Given a post answered 503 and DeleteItem (forgetting the attempt) failing
    faulty.env.sandbox.script(Reply(status=503))
    faulty.fault("dynamodb", "DeleteItem", fault)
    body = _body("DD-1")
    started = time.monotonic()
    assert faulty.run(body, remaining_ms=WINDOW_MS)[0] == "retry"
    # When it comes back within the window, it waits (the order looks in progress), not posted
    faulty.proxy.clear_rules()
    assert faulty.run(body)[0] == "retry"
    assert faulty.warned(ANOTHER_INVOCATION)
    assert faulty.posts("DD-1") == 1
    # Then it is delivered once after the window
    _sleep_past_window(started)
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DD-1") == 1


# ---------------------------------------------------------------- SQS: the dead-letter queue


@pytest.mark.parametrize("fault", NOT_TAKEN)
def test_an_invalid_record_whose_quarantine_fails_comes_back_and_is_quarantined_never_posted(
    faulty: Faulty, fault: str
) -> None:
    # Given SendMessage to the DLQ failing
    faulty.fault("sqs", "SendMessage", fault)
    body = _invalid_body("QI-1")
    # When an invalid record comes, it comes back rather than being lost
    assert faulty.run(body, message_id="m-QI-1")[0] == "retry"
    assert faulty.dead_letters() == []
    # Then, next time, it is quarantined; it is never posted
    faulty.proxy.clear_rules()
    assert faulty.run(body, message_id="m-QI-1") == ("invalid", [])
    assert [m["MessageAttributes"]["outcome"]["StringValue"] for m in faulty.dead_letters()] == ["invalid"]
    assert faulty.posts("QI-1") == 0


@pytest.mark.parametrize("fault", ["throttle_after", "drop_after"])
def test_a_quarantine_sent_without_an_answer_leaves_two_identical_copies_on_the_dead_letter_queue(
    faulty: Faulty, fault: str
) -> None:
    # Given SendMessage to the DLQ taking effect, its answer lost
    faulty.fault("sqs", "SendMessage", fault)
    body = _invalid_body("QI-2")
    assert faulty.run(body, message_id="m-QI-2")[0] == "retry"
    faulty.proxy.clear_rules()
    assert faulty.run(body, message_id="m-QI-2") == ("invalid", [])
    # Then the DLQ holds one copy per send that took effect (the first delivery's and the next's), each
    # the original body, so that a redrive is still safe; nothing was posted
    copies = faulty.dead_letters()
    assert len(copies) == 2
    assert {m["Body"] for m in copies} == {body}
    assert faulty.posts("QI-2") == 0


@pytest.mark.parametrize("fault", ["throttle", "drop"])
def test_a_rejected_record_whose_quarantine_fails_is_quarantined_when_it_comes_back_not_posted_again(
    faulty: Faulty, fault: str
) -> None:
    # Given Refersion rejecting the order (422) and SendMessage to the DLQ failing
    faulty.env.sandbox.script(Reply(status=422), Reply(status=422))
    faulty.fault("sqs", "SendMessage", fault)
    body = _body("QR-1")
    # When the record comes, it is posted once, rejected, remembered by its messageId, and comes back
    assert faulty.run(body, message_id="m-QR-1")[0] == "retry"
    assert faulty.posts("QR-1") == 1
    # Then the same message coming back is quarantined without posting it again (issue 13's second case)
    faulty.proxy.clear_rules()
    assert faulty.run(body, message_id="m-QR-1") == ("rejected", [])
    assert len(faulty.dead_letters()) == 1
    assert faulty.posts("QR-1") == 1
    # ... while a redrive from the DLQ (a new message) is Refersion's to judge again: posted, rejected
    assert faulty.run(body, message_id="m-QR-1-redriven") == ("rejected", [])
    assert faulty.posts("QR-1") == 2


@pytest.mark.parametrize("fault", ["throttle", "drop"])
def test_a_retry_whose_pacing_fails_still_comes_back(faulty: Faulty, fault: str) -> None:
    # Given pacing on the source queue, a post answered 503, and ChangeMessageVisibilityBatch failing
    faulty.env.set(SOURCE_QUEUE_URL=faulty.env.resources.queue_url)
    faulty.env.sandbox.script(Reply(status=503))
    faulty.fault("sqs", "ChangeMessageVisibilityBatch", fault)
    # When the record is retried, it is still handed back to SQS (it returns after the visibility
    # timeout instead of its paced delay), and the relay says pacing failed
    outcome, handed_back = faulty.run(_body("PV-1"))
    assert (outcome, len(handed_back)) == ("retry", 1)
    assert faulty.warned("could not pace retries")
    assert faulty.proxy.faults_injected() == {("sqs", "ChangeMessageVisibilityBatch", fault): 1}
