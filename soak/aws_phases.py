"""The soak's AWS-fault phases (issue 13): the same plan, with Secrets Manager, DynamoDB, SQS and then all
three answering through the fault proxy (local/aws_faults.py) with throttles, 5xx, slow answers and
dropped connections, some of them after the call took effect.

What an AWS fault can do to an order, and how it is accounted for here. botocore makes one attempt per
call (handler/budget.py): a call that fails before the post makes the record retry, and SQS brings it
back; the order-state writes after a post are retried by the relay until the record's deadline.

* an order delivered but recorded nowhere: its answered post was followed by an order-state "delivered"
  write that never took effect within the record's deadline AND a Powertools done mark (its UpdateItem to
  COMPLETED) that never took effect. The relay logs and counts it (delivered_not_recorded), and a later
  copy is posted again. The soak counts such a duplicate under its own cause, "done mark not written", at
  most one per such pair the proxy saw fail. A done mark that fails alone causes no duplicate: the order
  state says the order was delivered;
* a dead-letter SendMessage that took effect but whose answer was lost (``*_after``, ``slow``): the
  relay, told it failed, retries the record, and the DLQ holds more than one copy of the order;
* a ChangeMessageVisibilityBatch (retry pacing) that failed: the record comes back after the queue's
  visibility timeout (360 s) rather than its paced delay. The soak makes such records visible again once
  the paced delay has passed, standing for that timeout elapsing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from handler.budget import minimum_function_timeout_seconds
from local.aws_faults import Call, FaultRule
from soak.lines import order_id_of_body
from soak.settings import SOAK_OVERRIDES

# The Powertools idempotency key of an order (handler/idempotency.py KEY_PREFIX, event_key "order_id",
# Powertools' default md5 of the JSON value), and the order state's (handler/order_state.py state_key).
_KEY_PREFIX: Final = "refersion-order#"
_STATE_PREFIX: Final = "order-state#"
# The order-state write that records a delivery (handler/order_state_dynamodb.py mark_delivered).
_DELIVERED_WRITE: Final = "#delivered_at = :at"

# Per call, in percent: 35 % of calls meet a fault (times the phase's scale). botocore makes one
# attempt per call (handler/budget.py), so a faulted call fails: the record retries (SQS brings it back,
# paced), or, for an order-state write after a post, the relay tries again within the record's deadline
# (handler/aws_retry.py). Slow answers cost SLOW_SECONDS each (past the 1 s read timeout): rare.
AWS_FAULT_WEIGHTS: Final[Mapping[str, float]] = {
    "throttle": 6,
    "500": 8,
    "503": 8,
    "drop": 5,
    "throttle_after": 1.5,
    "500_after": 3,
    "drop_after": 3,
    "slow": 0.25,
}
SLOW_SECONDS: Final = 5.5  # past the relay's 1 s read timeout: the call takes effect late


@dataclass(frozen=True)
class AwsPhase:
    """Services to fault, at AWS_FAULT_WEIGHTS times ``scale`` per attempt."""

    name: str
    services: tuple[str, ...]
    scale: float = 1.0


AWS_PHASES: Final = (
    AwsPhase("Secrets Manager", ("secretsmanager",)),
    # A record makes up to ~6 DynamoDB calls (the idempotency lock and done mark, the order state before and
    # after its post), each failing at its first fault: 0.3 x 35 % ~ 10 % per call, so about half of the
    # records meet at least one fault and the rest go through, instead of nearly every record retrying
    # until maxReceiveCount (12) in the soak's compressed pacing.
    AwsPhase("DynamoDB", ("dynamodb",), scale=0.3),
    # The relay calls SQS only to quarantine (5 % of orders are invalid) and to pace retries: its calls
    # are faulted at SQS_WEIGHT times the phase's rate (here 0.5 x 4 = 2 x), so that they fail now and then.
    AwsPhase("SQS", ("sqs",), scale=0.5),
    # A record makes calls to all three (~8 calls): each at a quarter of the rate, so that a record is not
    # retried so often that it meets maxReceiveCount (12) in the soak's compressed pacing (1 s, 4 s, 8 s,
    # where the template's is 30 s, 2 min, 8 min, ... over hours).
    AwsPhase("all three", ("secretsmanager", "dynamodb", "sqs"), scale=0.25),
)
DEFAULT_PHASE_ORDERS: Final = 100

# On top of the soak's overrides, while AWS faults are injected:
AWS_PHASE_OVERRIDES: Final[Mapping[str, str]] = {
    # Read the key pair on every record, so that Secrets Manager's faults meet a fair share of records
    # (with the template's 300 s cache the warm relay would read it once).
    "SECRET_CACHE_SECONDS": "0",
    # Retries paced 1 s, 4 s, then 8 s: an order whose in-progress record was written without an answer
    # is locked for the invocation's remaining time (AWS_PHASE_FUNCTION_TIMEOUT_SECONDS); with the soak's
    # flat 1 s pacing it would meet maxReceiveCount (12) inside that window and be redriven, which the
    # template's 30 s, 2 min, 8 min... never does. 1/4/8 keeps the receives within the window to ~5.
    "RETRY_MAX_DELAY_SECONDS": "8",
}
# The poller's function timeout, and so the in-progress window of an order whose invocation lost track
# of it: the shortest under which a record can still start (handler/budget.py: with the soak's 0.5 s
# Refersion timeout, 27 s of budget plus the start-up margin), so that such an order waits ~32 s.
AWS_PHASE_FUNCTION_TIMEOUT_SECONDS: Final = minimum_function_timeout_seconds(
    float(SOAK_OVERRIDES["REFERSION_TIMEOUT_SECONDS"])
)


# SQS's few calls (quarantine, pacing) are faulted at 4 x the phase's rate: in "all three", 0.25 x 4 = 1 x.
SERVICE_WEIGHT: Final[Mapping[str, float]] = {"sqs": 4.0}


def phase_rules(phase: AwsPhase, weights: Mapping[str, float] = AWS_FAULT_WEIGHTS) -> list[FaultRule]:
    """Rules drawing each fault with its weight per attempt: the proxy tries rules in order, so each
    probability is conditional on the rules before it not having fired."""
    rules: list[FaultRule] = []
    for service in phase.services:
        left = 1.0
        for fault, percent in weights.items():
            share = percent * phase.scale * SERVICE_WEIGHT.get(service, 1.0) / 100
            rules.append(FaultRule(service, "*", fault, share / left, slow_seconds=SLOW_SECONDS))
            left -= share
    return rules


def first_call_faults(phase: AwsPhase) -> list[FaultRule]:
    """One 503 on the first call to each service of the phase, before the drawn faults: every service
    the phase names meets at least one fault however the threads order the calls (a small run draws
    few calls to a rarely used service)."""
    return [FaultRule(service, "*", "503", 1.0, times=1) for service in phase.services]


def idempotency_key(order_id: str) -> str:
    digest = hashlib.md5(json.dumps(order_id).encode(), usedforsecurity=False).hexdigest()
    return _KEY_PREFIX + digest


@dataclass(frozen=True)
class AwsEffects:
    """What the proxy saw, by order: deliveries recorded nowhere, dead-letter sends that took effect
    without the relay knowing, and pacing calls that never took effect."""

    # order id -> deliveries recorded nowhere: min(done marks, order-state "delivered" writes never taken)
    done_marks_not_written: Counter[str]
    dlq_copies_unanswered: Counter[str]  # order id -> DLQ sends that took effect, answered with a fault
    unpaced_handles: list[str]  # receipt handles whose pacing never took effect
    faults: Counter[tuple[str, str, str]]
    calls: Counter[tuple[str, str]]
    calls_failed: Counter[tuple[str, str]]  # calls that failed (a write after a post: all the relay's tries)


# Calls whose request is the same for every record: their attempts cannot be told apart by request.
_SAME_REQUEST_EVERY_TIME: Final = {("secretsmanager", "GetSecretValue")}


def _logical_calls(calls: Sequence[Call], service: str, operation: str) -> dict[str, list[Call]]:
    """One call per request: botocore makes one attempt, and the relay's own retries of an order-state
    write after a post (handler/aws_retry.py) send the same request again, so they group as one call."""
    grouped: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        if call.service == service and call.operation == operation:
            grouped[json.dumps(dict(call.request), sort_keys=True)].append(call)
    return grouped


def aws_effects(calls: Sequence[Call], order_ids: Iterable[str], dlq_url: str) -> AwsEffects:
    by_key = {idempotency_key(order_id): order_id for order_id in order_ids}
    by_state = {_STATE_PREFIX + order_id: order_id for order_id in by_key.values()}
    done_marks: Counter[str] = Counter()
    delivered_writes: Counter[str] = Counter()
    for attempts in _logical_calls(calls, "dynamodb", "UpdateItem").values():
        key = str(attempts[0].request.get("Key", {}).get("id", {}).get("S", ""))
        if any(a.took_effect for a in attempts):
            continue
        if key in by_key:
            done_marks[by_key[key]] += 1
        elif key in by_state and _DELIVERED_WRITE in str(attempts[0].request.get("UpdateExpression")):
            delivered_writes[by_state[key]] += 1
    recorded_nowhere = Counter({o: min(n, delivered_writes[o]) for o, n in done_marks.items()})
    dlq_copies: Counter[str] = Counter()
    for call in calls:
        to_dlq = call.operation == "SendMessage" and call.request.get("QueueUrl") == dlq_url
        if to_dlq and call.took_effect and not call.answered:
            dlq_copies[order_id_of_body(str(call.request.get("MessageBody"))) or "?"] += 1
    unpaced: list[str] = []
    for attempts in _logical_calls(calls, "sqs", "ChangeMessageVisibilityBatch").values():
        if not any(a.took_effect for a in attempts):
            unpaced.extend(str(e.get("ReceiptHandle")) for e in attempts[0].request.get("Entries", []))
    failed: Counter[tuple[str, str]] = Counter()
    for service, operation in {(c.service, c.operation) for c in calls} - _SAME_REQUEST_EVERY_TIME:
        for attempts in _logical_calls(calls, service, operation).values():
            failed[(service, operation)] += all(a.fault and not a.answered for a in attempts)
    return AwsEffects(
        done_marks_not_written=+recorded_nowhere,
        dlq_copies_unanswered=dlq_copies,
        unpaced_handles=unpaced,
        faults=Counter((c.service, c.operation, c.fault) for c in calls if c.fault),
        calls=Counter((c.service, c.operation) for c in calls),
        calls_failed=failed,
    )
