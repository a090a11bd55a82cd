"""Issue 13: what each AWS-side fault does to an order, through the real handler.

The relay's boto3 clients reach moto through the fault-injecting proxy (local/aws_faults.py), by
AWS_ENDPOINT_URL only; botocore's own retries stay on (handler/wiring.py), so a fault on every attempt
is what is left after them. For each service and fault: the record's outcome, how many times the order
reached the sandbox, and what its next delivery (the record coming back, or a re-published copy) does.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from handler.config import Settings
from handler.wiring import _sdk_config
from local.aws_faults import AwsFaultProxy, FaultRule, attempts_per_call
from local.lambda_shapes import FakeLambdaContext, sqs_event
from local.sandbox import Reply
from tests.support.events import as_eventbridge_body, failures, order
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration

# Faults answered on every attempt, so botocore's retries are exhausted; the call never took effect.
EXHAUSTING = ["throttle", "500", "503", "drop"]
# In-progress window of the tests that wait for it: just above a record's budget (2 x 1 s + 2 s).
WINDOW_MS = 4_500
# Attempts botocore makes per call with the relay's own client configuration.
_SETTINGS = Settings.from_env({"REFERSION_SECRET_ID": "-", "DEAD_LETTER_QUEUE_URL": "-"})
ATTEMPTS = attempts_per_call(getattr(_sdk_config(_SETTINGS), "retries", None))


@dataclass
class Faulty:
    """The relay, its AWS calls through the proxy, and what one record did."""

    env: RelayEnv
    proxy: AwsFaultProxy
    logs: io.StringIO

    def fault(self, service: str, operation: str, fault: str, times: int | None = None) -> None:
        self.proxy.set_rules([FaultRule(service, operation, fault, times=times)])

    def run(self, body: str, *, remaining_ms: float = 60_000) -> tuple[str, list[str]]:
        """One invocation on one record: its outcome and the ids handed back to SQS."""
        before = len(self.logs.getvalue().splitlines())
        response = self.env.invoke(sqs_event(body), FakeLambdaContext(remaining_ms=remaining_ms))
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


@pytest.fixture
def faulty(relay_env: RelayEnv, relay_logs: io.StringIO) -> Iterator[Faulty]:
    with AwsFaultProxy(relay_env.aws.endpoint_url, seed=13) as proxy:
        relay_env.set(AWS_ENDPOINT_URL=proxy.url, IDEMPOTENCY_TABLE_NAME=relay_env.resources.table_name)
        yield Faulty(relay_env, proxy, relay_logs)


def _body(order_id: str, **changes: Any) -> str:
    return as_eventbridge_body(order(order_id, **changes))


def _invalid_body(order_id: str) -> str:
    return _body(order_id, products=[{"sku": "A", "name": "A", "price": "$5.50", "quantity": 1}])


# ---------------------------------------------------------------- Secrets Manager


@pytest.mark.parametrize("fault", [*EXHAUSTING, "throttle_after"])
def test_an_unreadable_key_pair_leaves_the_order_to_retry_and_it_is_delivered_once_later(
    faulty: Faulty, fault: str
) -> None:
    # Given GetSecretValue failing on every attempt (a cold relay: nothing cached)
    faulty.fault("secretsmanager", "GetSecretValue", fault)
    body = _body("SM-1")
    # When a record comes: it is retried, nothing posted
    assert faulty.run(body)[0] == "retry"
    assert faulty.posts("SM-1") == 0
    # Then, once Secrets Manager answers again, the record coming back is delivered, once
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("SM-1") == 1
    assert faulty.proxy.faults_injected()[("secretsmanager", "GetSecretValue", fault)] == ATTEMPTS


def test_a_throttle_botocore_absorbs_costs_nothing(faulty: Faulty) -> None:
    # Given GetSecretValue, then the done mark, throttled on all attempts but botocore's last
    faulty.proxy.set_rules(
        [
            FaultRule("secretsmanager", "GetSecretValue", "throttle", times=ATTEMPTS - 1),
            FaultRule("dynamodb", "UpdateItem", "throttle", times=ATTEMPTS - 1),
        ]
    )
    # When a record comes, it is delivered at once, and its copy is a duplicate
    assert faulty.run(_body("SM-2")) == ("delivered", [])
    assert faulty.run(_body("SM-2")) == ("duplicate", [])
    assert faulty.accepted("SM-2") == 1
    assert sum(faulty.proxy.faults_injected().values()) == 2 * (ATTEMPTS - 1)


# ---------------------------------------------------------------- DynamoDB: the in-progress record


@pytest.mark.parametrize("fault", EXHAUSTING)
def test_an_in_progress_record_that_cannot_be_written_leaves_the_order_unposted_for_a_retry(
    faulty: Faulty, fault: str
) -> None:
    # Given PutItem (the in-progress record) failing on every attempt
    faulty.fault("dynamodb", "PutItem", fault)
    body = _body("DP-1")
    # When a record comes, it is retried without a post
    assert faulty.run(body)[0] == "retry"
    assert faulty.posts("DP-1") == 0
    # Then it is delivered once when it comes back
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DP-1") == 1


@pytest.mark.parametrize(("fault", "times"), [("500_after", None), ("drop_after", None), ("drop_after", 1)])
def test_an_in_progress_record_written_without_an_answer_holds_the_order_until_its_window_passes(
    faulty: Faulty, fault: str, times: int | None
) -> None:
    # Given PutItem taking effect, its answer lost (on every attempt, or once: botocore's retry then
    # meets the relay's own in-progress record and takes it for another invocation's)
    faulty.fault("dynamodb", "PutItem", fault, times=times)
    body = _body("DP-2")
    started = time.monotonic()
    assert faulty.run(body, remaining_ms=WINDOW_MS)[0] == "retry"
    if times == 1:
        assert faulty.warned("another invocation is delivering this order right now")
    # When it comes back within the in-progress window, it is still not posted: it locked itself out
    faulty.proxy.clear_rules()
    assert faulty.run(body, remaining_ms=WINDOW_MS)[0] == "retry"
    assert faulty.posts("DP-2") == 0
    assert time.monotonic() - started < WINDOW_MS / 1000
    # Then, once the window has passed, it is delivered once
    time.sleep(WINDOW_MS / 1000 + 0.5 - (time.monotonic() - started))
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DP-2") == 1


# ---------------------------------------------------------------- DynamoDB: the done mark


@pytest.mark.parametrize("fault", EXHAUSTING)
def test_a_done_mark_that_cannot_be_written_lets_a_later_copy_be_posted_again_and_says_so(
    faulty: Faulty, fault: str
) -> None:
    # Given UpdateItem (the done mark) failing on every attempt after a successful post
    faulty.fault("dynamodb", "UpdateItem", fault)
    body = _body("DU-1")
    # When the record comes, the order is delivered and acknowledged (posting it again would credit
    # it twice), and the relay says the order is not recorded
    assert faulty.run(body, remaining_ms=WINDOW_MS) == ("delivered", [])
    assert faulty.warned("order delivered but not recorded in the idempotency table")
    # Then a copy re-published after the in-progress window is posted again: the one duplicate an
    # AWS fault causes (issue 13's first case; the soak counts it as "done mark not written")
    faulty.proxy.clear_rules()
    time.sleep(WINDOW_MS / 1000 + 0.5)
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DU-1") == 2


@pytest.mark.parametrize("fault", ["throttle_after", "drop_after"])
def test_a_done_mark_written_without_an_answer_still_stops_a_later_copy(faulty: Faulty, fault: str) -> None:
    # Given UpdateItem taking effect, its answer lost on every attempt
    faulty.fault("dynamodb", "UpdateItem", fault)
    body = _body("DU-2")
    assert faulty.run(body, remaining_ms=WINDOW_MS) == ("delivered", [])
    # When a copy comes after the in-progress window, it is a duplicate: never posted again
    faulty.proxy.clear_rules()
    time.sleep(WINDOW_MS / 1000 + 0.5)
    assert faulty.run(body) == ("duplicate", [])
    assert faulty.accepted("DU-2") == 1


def test_a_done_mark_answered_after_the_read_timeout_is_retried_and_the_order_stays_once(
    faulty: Faulty,
) -> None:
    # Given one UpdateItem held past the relay's 5 s read timeout (it reaches DynamoDB late)
    faulty.fault("dynamodb", "UpdateItem", "slow", times=1)
    body = _body("DU-3")
    # When the record comes, botocore's retry writes the done mark: delivered, and the copy is a duplicate
    assert faulty.run(body) == ("delivered", [])
    assert faulty.run(body) == ("duplicate", [])
    assert faulty.accepted("DU-3") == 1


@pytest.mark.parametrize("fault", ["throttle", "drop"])
def test_a_not_delivered_order_whose_in_progress_record_cannot_be_deleted_is_delivered_after_its_window(
    faulty: Faulty, fault: str
) -> None:
    # Given a post answered 503 and DeleteItem (forgetting the attempt) failing on every attempt
    faulty.env.sandbox.script(Reply(status=503))
    faulty.fault("dynamodb", "DeleteItem", fault)
    body = _body("DD-1")
    started = time.monotonic()
    assert faulty.run(body, remaining_ms=WINDOW_MS)[0] == "retry"
    # When it comes back within the window, it waits (the order looks in progress)
    faulty.proxy.clear_rules()
    assert faulty.run(body, remaining_ms=WINDOW_MS)[0] == "retry"
    assert faulty.posts("DD-1") == 1
    # Then it is delivered once after the window
    time.sleep(WINDOW_MS / 1000 + 0.5 - (time.monotonic() - started))
    assert faulty.run(body) == ("delivered", [])
    assert faulty.accepted("DD-1") == 1


# ---------------------------------------------------------------- SQS: the dead-letter queue


@pytest.mark.parametrize("fault", EXHAUSTING)
def test_an_invalid_record_whose_quarantine_fails_comes_back_and_is_quarantined_never_posted(
    faulty: Faulty, fault: str
) -> None:
    # Given SendMessage to the DLQ failing on every attempt
    faulty.fault("sqs", "SendMessage", fault)
    body = _invalid_body("QI-1")
    # When an invalid record comes, it comes back rather than being lost
    assert faulty.run(body)[0] == "retry"
    assert faulty.dead_letters() == []
    # Then, next time, it is quarantined; it is never posted
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("invalid", [])
    assert [m["MessageAttributes"]["outcome"]["StringValue"] for m in faulty.dead_letters()] == ["invalid"]
    assert faulty.posts("QI-1") == 0


@pytest.mark.parametrize("fault", ["throttle_after", "drop_after"])
def test_a_quarantine_sent_without_an_answer_leaves_identical_copies_on_the_dead_letter_queue(
    faulty: Faulty, fault: str
) -> None:
    # Given SendMessage to the DLQ taking effect, its answer lost on every attempt
    faulty.fault("sqs", "SendMessage", fault)
    body = _invalid_body("QI-2")
    assert faulty.run(body)[0] == "retry"
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("invalid", [])
    # Then the DLQ holds one copy per attempt that took effect (botocore's, and 1 on the next
    # delivery), each the original body, so that a redrive is still safe; nothing was posted
    copies = faulty.dead_letters()
    assert len(copies) == ATTEMPTS + 1
    assert {m["Body"] for m in copies} == {body}
    assert faulty.posts("QI-2") == 0


@pytest.mark.xfail(
    strict=True,
    reason="issue 13: a rejected order whose DLQ send failed is posted again on its next attempt: the "
    "rejection is not remembered (Powertools deletes the in-progress record on a non-2xx), so the relay "
    "cannot tell it from a first delivery",
)
def test_a_rejected_record_whose_quarantine_is_throttled_is_quarantined_next_time_not_posted_again(
    faulty: Faulty,
) -> None:
    # Given Refersion rejecting the order (422) and SendMessage to the DLQ throttled on every attempt
    faulty.env.sandbox.script(Reply(status=422), Reply(status=422))
    faulty.fault("sqs", "SendMessage", "throttle")
    body = _body("QR-1")
    # When the record comes, it is posted once, rejected, and comes back (not lost)
    assert faulty.run(body)[0] == "retry"
    assert faulty.posts("QR-1") == 1
    # Then the next attempt quarantines it without posting it again (issue 13's second case)
    faulty.proxy.clear_rules()
    assert faulty.run(body) == ("rejected", [])
    assert len(faulty.dead_letters()) == 1
    assert faulty.posts("QR-1") == 1


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
    assert faulty.proxy.faults_injected()[("sqs", "ChangeMessageVisibilityBatch", fault)] == ATTEMPTS
