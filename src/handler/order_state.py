"""The relay's memory of each order (CONTRACT §11): seen, being posted, answered, delivered, cancelled.

This module holds the typed state, the port the relay talks to (`OrderStates`) and the pure rules on
them (keys, time format, merging lines). `order_state_dynamodb.py` keeps the state in the idempotency
table. Nothing here is customer data: order and conversion ids, times, digests, skus, prices and
quantities only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mapping.order_state import OrderLine
    from mapping.refunds import CancelPlan

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

DEFAULT_ORDER_RECORD_DAYS = 400

# Key prefixes. Powertools' own records start with "refersion-order#" (idempotency.KEY_PREFIX); none of
# these can be mistaken for one, nor for one another (the character after the word differs).
STATE_PREFIX = "order-state#"
STATE_HASHED_PREFIX = "order-state-sha256#"
CONFIRMATION_PREFIX = "confirmation#"
CONFIRMATION_HASHED_PREFIX = "confirmation-sha256#"
# A DynamoDB partition key may hold 2048 UTF-8 bytes. Ids up to 1024 bytes are kept as they are, so an
# operator can find an order by its id; longer ones (and ids that are not valid UTF-8, such as a lone
# surrogate from a JSON "\ud800") are keyed by their SHA-256 under a prefix of their own.
RAW_KEY_LIMIT_BYTES = 1024

# Every stored time is UTC in this fixed-width form, so that comparing strings compares times (the
# conditions of mark_answered rely on it, and so will a GSI sort key on delivered_at).
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class OrderStateError(Exception):
    """The order state could not be read or written as asked."""


class StateChanged(OrderStateError):
    """A conditional write lost: another invocation changed the order first. Re-read and decide again.

    `current` is the state as the store found it (None when there is no record at all).
    """

    def __init__(self, order_id: str, reason: str, current: OrderState | None) -> None:
        super().__init__(f"order state changed: {reason}")
        self.order_id = order_id
        self.reason = reason
        self.current = current


class StateUnavailable(OrderStateError):
    """The store did not answer usefully before the deadline (throttling, 5xx, timeouts, access)."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"order state unavailable ({cause})")
        self.cause = cause


@dataclass(frozen=True)
class ItemLine:
    """One line as sent to Refersion: sku, unit price (exact decimal), quantity."""

    sku: str
    price: Decimal
    quantity: int

    @property
    def line_key(self) -> tuple[str, Decimal]:
        # Decimal equality and hash are by value: 5.5 and 5.50 are the same price to Refersion.
        return (self.sku, self.price)


@dataclass(frozen=True)
class LastPost:
    """How the last post of the order ended: a status line was read (answered) or not (unanswered)."""

    answered: bool
    at: datetime


@dataclass(frozen=True)
class Delivered:
    at: datetime
    body_digest: str
    items: tuple[ItemLine, ...]
    currency: str

    @property
    def day(self) -> str:
        return self.at.astimezone(UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class RejectedRecord:
    """A record Refersion refused with a 4xx (order side, issue 13): remembered so that, if its quarantine
    failed and it comes back, it is quarantined again without a second post. Keyed by the SQS messageId:
    a redrive from the dead-letter queue is a new message, and is posted."""

    record_id: str
    status: int
    reason: str
    at: datetime


@dataclass(frozen=True)
class OrderState:
    """One order as the relay remembers it. `version` counts the writes (0: no record yet)."""

    order_id: str
    version: int = 0
    seen_at: datetime | None = None
    post_began_at: datetime | None = None
    last_post: LastPost | None = None
    delivered: Delivered | None = None
    cancelled: tuple[ItemLine, ...] = ()
    refund_keys: frozenset[str] = frozenset()
    # A refund's cancel calls being worked through (CONTRACT §9): mapping's plan as it was stored, the index
    # of its next call, and when that call began if no answer has been recorded since (CONTRACT §11's mark,
    # written before the call so that a killed or unanswered call is known to the next attempt).
    cancel_plan: CancelPlan | None = None
    cancel_next_call: int = 0
    cancel_began_at: datetime | None = None
    confirmations: frozenset[str] = frozenset()
    rejected_records: tuple[RejectedRecord, ...] = ()

    def rejection_of(self, record_id: str) -> RejectedRecord | None:
        """The 4xx this very record (same SQS messageId) got before, if any."""
        found = [rejected for rejected in self.rejected_records if rejected.record_id == record_id]
        return max(found, key=lambda rejected: rejected.at) if found else None

    @property
    def post_in_doubt(self) -> bool:
        """A post began and no answer followed (killed mid-post), or it ended unanswered (CONTRACT §10)."""
        if self.delivered is not None or self.post_began_at is None:
            return False
        if self.last_post is None or self.last_post.at < self.post_began_at:
            return True
        return not self.last_post.answered

    def remaining(self) -> tuple[ItemLine, ...]:
        """Delivered lines less what was cancelled, by sku and price (lines with nothing left omitted)."""
        delivered = self.delivered.items if self.delivered else ()
        taken = {line.line_key: line.quantity for line in merge_lines(self.cancelled)}
        left: list[ItemLine] = []
        for line in merge_lines(delivered):
            quantity = line.quantity - taken.get(line.line_key, 0)
            if quantity > 0:
                left.append(ItemLine(line.sku, line.price, quantity))
        return tuple(left)


@dataclass(frozen=True)
class Confirmation:
    """Refersion's announcement of a conversion (CONTRACT §10): no customer data."""

    conversion_id: str
    order_id: str
    status: str
    affiliate_id: str | None
    received_at: datetime


class OrderStates(Protocol):
    """The order-state store. Every method takes an optional `deadline` (a `time.monotonic()` value):
    throttling, 5xx and timeouts are retried until then, then StateUnavailable; without a deadline one
    attempt is made. A lost condition raises StateChanged and is never retried blindly.
    """

    def get(self, order_id: str, *, deadline: float | None = None) -> OrderState | None: ...

    def mark_seen(self, order_id: str, *, deadline: float | None = None) -> OrderState: ...

    def mark_post_began(
        self, order_id: str, at: datetime, *, deadline: float | None = None
    ) -> OrderState: ...

    def mark_answered(
        self, order_id: str, answered: bool, at: datetime, *, deadline: float | None = None
    ) -> OrderState: ...

    def mark_delivered(
        self,
        order_id: str,
        body_digest: str,
        items: Sequence[ItemLine],
        currency: str,
        at: datetime,
        *,
        deadline: float | None = None,
    ) -> OrderState: ...

    def record_cancel(
        self,
        state: OrderState,
        refund_keys: Iterable[str],
        cancelled_items: Sequence[ItemLine],
        *,
        deadline: float | None = None,
    ) -> OrderState: ...

    def store_cancel_plan(
        self, state: OrderState, plan: CancelPlan, *, deadline: float | None = None
    ) -> OrderState: ...

    def advance_cancel_plan(self, state: OrderState, *, deadline: float | None = None) -> OrderState: ...

    def mark_cancel_began(
        self, state: OrderState, plan: CancelPlan, at: datetime, *, deadline: float | None = None
    ) -> OrderState: ...

    def clear_cancel_began(self, state: OrderState, *, deadline: float | None = None) -> OrderState: ...

    def drop_cancel_plan(self, state: OrderState, *, deadline: float | None = None) -> OrderState: ...

    # Order side (issues 11-13): undo a post-began mark when nothing was sent; remember a 4xx per record.

    def mark_post_not_sent(
        self, order_id: str, began_at: datetime, previous: datetime | None, *, deadline: float | None = None
    ) -> OrderState: ...

    def mark_rejected(
        self, order_id: str, rejected: RejectedRecord, *, deadline: float | None = None
    ) -> OrderState: ...

    def put_confirmation(self, confirmation: Confirmation, *, deadline: float | None = None) -> bool: ...

    def confirmations_for(
        self, order_id: str, *, deadline: float | None = None
    ) -> tuple[Confirmation, ...]: ...


def state_key(order_id: str) -> str:
    return _key(STATE_PREFIX, STATE_HASHED_PREFIX, order_id)


def confirmation_key(conversion_id: str) -> str:
    return _key(CONFIRMATION_PREFIX, CONFIRMATION_HASHED_PREFIX, conversion_id)


def _key(prefix: str, hashed_prefix: str, value: str) -> str:
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raw = b""
    else:
        if len(raw) <= RAW_KEY_LIMIT_BYTES:
            return prefix + value
    return hashed_prefix + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def storable_text(value: str) -> str:
    """The value itself when DynamoDB can hold it (valid UTF-8), else an escaped form of it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
    return value


def format_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("order-state times must be timezone-aware")
    return at.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def merge_lines(*groups: Iterable[ItemLine]) -> tuple[ItemLine, ...]:
    """Quantities summed per (sku, price), in first-seen order, keeping the first price spelling."""
    merged: dict[tuple[str, Decimal], ItemLine] = {}
    for group in groups:
        for line in group:
            known = merged.get(line.line_key)
            quantity = line.quantity + (known.quantity if known else 0)
            merged[line.line_key] = ItemLine(
                known.sku if known else line.sku, (known or line).price, quantity
            )
    return tuple(merged.values())


def item_lines(lines: Iterable[OrderLine]) -> tuple[ItemLine, ...]:
    """mapping's order lines as the order state keeps them."""
    return tuple(ItemLine(line.sku, line.price, line.quantity) for line in lines)


def plan_to_store(state: OrderState, plan: CancelPlan) -> CancelPlan:
    """The plan a cancel call is about to begin for: the stored one, or `plan` when none is stored.

    A stored plan of another refund is never replaced (StateChanged): one refund at a time per order.
    """
    stored = state.cancel_plan
    if stored is None:
        return plan
    if stored != plan:
        raise StateChanged(state.order_id, "another cancel plan is stored for this order", state)
    if state.cancel_next_call >= len(stored.calls):
        raise StateChanged(state.order_id, "the stored cancel plan has no call left", state)
    return stored


def after_plan_call(state: OrderState) -> tuple[tuple[ItemLine, ...], frozenset[str], CancelPlan | None, int]:
    """What advancing the stored plan by one call leaves: cancelled lines, refund keys, the plan (None once
    done) and the index of its next call."""
    plan = state.cancel_plan
    if plan is None or state.cancel_next_call >= len(plan.calls):
        raise StateChanged(state.order_id, "no cancel plan with a call left", state)
    cancelled = merge_lines(state.cancelled, item_lines(plan.calls[state.cancel_next_call]))
    next_call = state.cancel_next_call + 1
    if next_call >= len(plan.calls):
        return cancelled, state.refund_keys | frozenset(plan.keys), None, 0
    return cancelled, state.refund_keys, plan, next_call
