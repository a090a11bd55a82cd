"""What the relay decides about a record before anything is posted: parse, classify, consent, map.

One function, so that the relay and the local preview (`python -m local.preview`) cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload

from handler.outcomes import Outcome, RecordResult
from handler.triggers import InboundRecord, datafly_event_of
from mapping import (
    EventKind,
    InvalidEvent,
    RefersionOrder,
    classify_event,
    consent_denied,
    map_order,
    order_ids_of,
)


@dataclass(frozen=True)
class NotPosted:
    """The record ends before any post: dropped, skipped or invalid, and why."""

    outcome: Outcome
    reasons: tuple[str, ...]
    order_id: str | None = None
    cart_id: str | None = None

    def result(self, record_id: str) -> RecordResult:
        return RecordResult(record_id, self.outcome, "; ".join(self.reasons), self.order_id, self.cart_id)


@dataclass(frozen=True)
class RefundRequest:
    """A refund or cancellation event for the refund path (CONTRACT §9), when refunds are on."""

    event: dict[str, Any]


@overload
def decide(
    inbound: InboundRecord, consent_category: str, *, refunds: Literal[False] = False
) -> NotPosted | RefersionOrder: ...


@overload
def decide(
    inbound: InboundRecord, consent_category: str, *, refunds: bool
) -> NotPosted | RefersionOrder | RefundRequest: ...


def decide(
    inbound: InboundRecord, consent_category: str, *, refunds: bool = False
) -> NotPosted | RefersionOrder | RefundRequest:
    """The order to post, the refund to hand on (only with `refunds`), or the outcome the record ends with
    instead (CONTRACT §2, §3, §5; §9). Refunds are dropped like any other event unless `refunds` is set."""
    try:
        event = datafly_event_of(inbound)
        kind = classify_event(event)
    except InvalidEvent as exc:
        return NotPosted(Outcome.INVALID, exc.reasons)
    if refunds and kind.is_refund:
        return RefundRequest(event)
    ids = order_ids_of(event)
    if kind is not EventKind.ORDER_COMPLETED:
        return NotPosted(Outcome.DROPPED, (_not_an_order(event),), *ids)
    if consent_denied(event, consent_category):
        return NotPosted(Outcome.SKIPPED, (f"consent for {consent_category} denied",), *ids)
    try:
        return map_order(event)
    except InvalidEvent as exc:
        return NotPosted(Outcome.INVALID, exc.reasons, *ids)


def _not_an_order(event: dict[str, Any]) -> str:
    name = event.get("event") if isinstance(event.get("event"), str) else event.get("type")
    return f"not an Order Completed event ({str(name)[:80]!r})"
