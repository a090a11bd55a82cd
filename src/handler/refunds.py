"""Refunds and cancellations (CONTRACT §9): each attempt of a refund record makes at most one cancel call.

The order state (CONTRACT §11) decides what is cancelled: a refund waits for an order seen but not delivered,
and for an order never seen until REFUND_WAIT_MINUTES after it was sent; a delivered order is planned by
mapping.plan_refund against what is left of it. The plan is stored with a mark before its call is sent
(`mark_cancel_began`), so that one refund at a time works on an order, a plan over 50 items is worked
through one call per attempt, and a call that went unanswered is known (and counted) when sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from urllib3.util import Url, parse_url

from handler.config import Settings, checked_endpoint_url
from handler.credentials import KeyPairSource
from handler.delivery import Deliverer, Delivery
from handler.observability import DYNAMODB, count_dependency_failure, logger
from handler.order_state import OrderState, OrderStates, StateChanged, StateUnavailable
from handler.outcomes import Outcome, RecordKind, RecordResult
from handler.refersion_client import HttpAnswer, RefersionClient
from handler.triggers import InboundRecord
from mapping import (
    CancelPlan,
    InvalidEvent,
    OrderLine,
    OrderView,
    RefersionCancel,
    RefundEvent,
    RefundKeys,
    RefundSkipped,
    RefundVerdict,
    order_ids_of,
    parse_refund,
    plan_refund,
    refund_keys,
)

CANCEL_PATH = "/conversion/cancel"
# Counted besides the outcome (CONTRACT §9: a 422 skipped; a cancel call sent again after going unanswered).
REFUND_SKIPPED_NO_CONVERSION = "refund_skipped_no_conversion"
REFUND_UNANSWERED_RESENT = "refund_unanswered_resent"
# How many times a refund is planned again after losing a conditional write to a concurrent one.
_CONFLICT_ROUNDS = 3
_NO_CONVERSION_TEXT = "invalid order id"


def cancel_url(api_url: str) -> str:
    """`{REFERSION_API_URL}/conversion/cancel`, joined on urllib3's reading of the URL and checked again."""
    url = parse_url(checked_endpoint_url(api_url))
    path = (url.path or "").rstrip("/") + CANCEL_PATH
    joined = Url(scheme=url.scheme, host=url.host, port=url.port, path=path, query=url.query).url
    return checked_endpoint_url(joined)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Call:
    """A cancel call to make: the plan (stored already, or new) and the state it was decided on."""

    state: OrderState
    plan: CancelPlan


class _Replan(Exception):
    """The order changed before the call was sent: decide again on `current`."""

    def __init__(self, current: OrderState | None) -> None:
        super().__init__("order state changed")
        self.current = current


class _NotRecorded(Exception):
    """A write after the call could not be made: the record comes back (the call may be sent again)."""


class RefundRelay:
    """One refund record to one outcome (CONTRACT §9), with at most one cancel call per attempt."""

    def __init__(
        self,
        deliverer: Deliverer,
        states: OrderStates,
        *,
        wait: timedelta,
        in_flight_seconds: float,
        clock: Callable[[], datetime] = _utc_now,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._deliverer = deliverer
        self._states = states
        self._wait = wait
        self._in_flight_seconds = in_flight_seconds
        self._clock = clock
        self._on_close = on_close

    def close(self) -> None:
        """Drop the cancel client's pooled connections (SnapStart restore)."""
        if self._on_close is not None:
            self._on_close()

    def relay(self, inbound: InboundRecord, event: dict[str, Any], deadline: float) -> RecordResult:
        """The outcome of one refund event; order-state writes are retried until `deadline` (monotonic)."""
        try:
            refund = parse_refund(event)
        except InvalidEvent as exc:
            return _result(inbound, Outcome.INVALID, "; ".join(exc.reasons), order_ids_of(event).order_id)
        try:
            return self._relay(inbound, refund, deadline)
        except StateUnavailable as exc:
            count_dependency_failure(DYNAMODB, "refund_order_state")
            return _result(inbound, Outcome.RETRY, f"order state unavailable ({exc.cause})", refund.order_id)

    def _relay(self, inbound: InboundRecord, refund: RefundEvent, deadline: float) -> RecordResult:
        keys = refund_keys(refund)
        state = self._states.get(refund.order_id, deadline=deadline)
        for _ in range(_CONFLICT_ROUNDS):
            step = self._decide(inbound, refund, keys, state)
            if isinstance(step, RecordResult):
                return step
            try:
                return self._call(inbound, step, deadline)
            except _Replan as changed:
                state = changed.current
        return _result(
            inbound,
            Outcome.RETRY,
            "the order changed while this refund was planned (a concurrent refund or its order)",
            refund.order_id,
        )

    # Deciding (nothing sent, nothing written)

    def _decide(
        self, inbound: InboundRecord, refund: RefundEvent, keys: RefundKeys, state: OrderState | None
    ) -> RecordResult | _Call:
        applied = state.refund_keys if state is not None else frozenset()
        if any(key in applied for key in keys.checked):
            return self._verdict(inbound, refund, lambda: plan_refund(refund, None, applied_keys=applied))
        if state is not None and state.cancel_plan is not None:
            if set(keys.checked) & set(state.cancel_plan.keys):
                return _Call(state, state.cancel_plan)  # this refund's own plan: its next call
            return self._waiting(
                inbound, refund, "another refund of this order is being applied; this one follows it"
            )
        if state is not None and state.delivered is not None:
            view = view_of(state)
            return self._verdict(
                inbound, refund, lambda: plan_refund(refund, view, applied_keys=applied), state
            )
        if state is not None and (state.seen_at is not None or state.post_began_at is not None):
            return self._waiting(inbound, refund, "the order was seen but is not delivered yet")
        return self._unseen(inbound, refund, state)

    def _unseen(
        self, inbound: InboundRecord, refund: RefundEvent, state: OrderState | None
    ) -> RecordResult | _Call:
        """An order the relay never saw: wait REFUND_WAIT_MINUTES after the refund was sent, then plan
        without a view (a full refund is skipped, one with products is sent as given)."""
        if self._unseen_wait_left(inbound) > 0:
            minutes = self._wait.total_seconds() / 60
            reason = f"the relay has not seen this order; waiting up to {minutes:g} min after it was sent"
            return self._waiting(inbound, refund, reason)
        applied = state.refund_keys if state is not None else frozenset()
        return self._verdict(inbound, refund, lambda: plan_refund(refund, None, applied_keys=applied), state)

    def _verdict(
        self,
        inbound: InboundRecord,
        refund: RefundEvent,
        plan: Callable[[], RefundVerdict],
        state: OrderState | None = None,
    ) -> RecordResult | _Call:
        try:
            verdict = plan()
        except InvalidEvent as exc:
            return _result(inbound, Outcome.INVALID, "; ".join(exc.reasons), refund.order_id)
        if isinstance(verdict, CancelPlan):
            return _Call(state or OrderState(refund.order_id), verdict)
        outcome = Outcome.SKIPPED if isinstance(verdict, RefundSkipped) else Outcome.DUPLICATE
        return _result(inbound, outcome, verdict.reason, refund.order_id)

    def _waiting(
        self, inbound: InboundRecord, refund: RefundEvent, reason: str, wait_seconds: float | None = None
    ) -> RecordResult:
        # No wait_seconds by default: the retry schedule (30 s, 2 min, 8 min, ...) brings the refund back
        # soon after what it waits for may have happened.
        return _result(inbound, Outcome.WAITING, reason, refund.order_id, wait_seconds=wait_seconds)

    def _unseen_wait_left(self, inbound: InboundRecord) -> float:
        if inbound.sent_at is None:
            return 0.0  # no sending time to count from: the wait cannot be told, so it is not held
        return (inbound.sent_at + self._wait - self._clock()).total_seconds()

    # Calling

    def _call(self, inbound: InboundRecord, call: _Call, deadline: float) -> RecordResult:
        state, plan = call.state, call.plan
        index = state.cancel_next_call if state.cancel_plan is not None else 0
        now = self._clock()
        resent = False
        if state.cancel_plan is not None and state.cancel_began_at is not None:
            age = (now - state.cancel_began_at).total_seconds()
            if age < self._in_flight_seconds:
                reason = f"a cancel call of this refund began {age:.0f} s ago and may still be in flight"
                return _result(
                    inbound,
                    Outcome.WAITING,
                    reason,
                    plan.order_id,
                    wait_seconds=self._in_flight_seconds - age,
                )
            resent = True
            logger.warning(
                "sending again a cancel call that went unanswered: Refersion may subtract it twice",
                extra={"record_id": inbound.record_id, "order_id": plan.order_id, "call": index + 1},
            )
        try:
            began = self._states.mark_cancel_began(state, plan, now, deadline=deadline)
        except StateChanged as changed:
            raise _Replan(changed.current) from None
        body = plan.body(index)
        delivery = self._deliverer.deliver(body.to_json_bytes())
        answered = _Answered(inbound, plan, index, body, delivery, resent)
        try:
            return self._after_answer(answered, began, deadline)
        except StateUnavailable as exc:
            count_dependency_failure(DYNAMODB, "refund_order_state")
            return self._not_recorded(answered, exc)
        except _NotRecorded as exc:
            return self._not_recorded(answered, exc)

    def _after_answer(self, answered: _Answered, began: OrderState, deadline: float) -> RecordResult:
        delivery, answer = answered.delivery, answered.delivery.answer
        if delivery.outcome is Outcome.DELIVERED:
            after = self._settle(began, self._states.advance_cancel_plan, deadline)
            calls = len(answered.plan.calls)
            if after.cancel_plan is None:
                return answered.result(Outcome.DELIVERED, f"cancelled at Refersion ({calls} call(s))")
            reason = f"call {answered.index + 1} of {calls} done; the next is made on the next attempt"
            return answered.result(Outcome.WAITING, reason)
        if _no_conversion(answer):
            return self._no_conversion(answered, began, deadline)
        if delivery.outcome is Outcome.REJECTED:
            self._settle(began, self._states.drop_cancel_plan, deadline)
            return answered.result(Outcome.REJECTED, delivery.reason)
        if answer is not None and answer.status is None and answer.maybe_received:
            # The mark stays: the next attempt knows this call may have been applied (CONTRACT §11).
            reason = (
                f"{delivery.reason}: Refersion may have applied this cancel; the next attempt sends it again"
            )
            return answered.result(Outcome.RETRY, reason, maybe_received=True)
        self._settle(began, self._states.clear_cancel_began, deadline)
        return answered.result(Outcome.RETRY, delivery.reason)

    def _no_conversion(self, answered: _Answered, began: OrderState, deadline: float) -> RecordResult:
        delivered = began.delivered
        minutes = f"{self._wait.total_seconds() / 60:g} min"
        if delivered is not None and self._clock() < delivered.at + self._wait:
            self._settle(began, self._states.clear_cancel_began, deadline)
            reason = (
                "Refersion has no conversion for this order yet (422 Invalid order ID): it processes orders"
                f" asynchronously; waiting up to {minutes} after the order's delivery"
            )
            return answered.result(Outcome.WAITING, reason)
        self._settle(began, self._states.drop_cancel_plan, deadline)
        when = "after its delivery" if delivered is not None else "and the relay never delivered it"
        reason = f"Refersion has no conversion to cancel (422 Invalid order ID) {minutes} {when}"
        return answered.result(Outcome.SKIPPED, reason, extra=REFUND_SKIPPED_NO_CONVERSION)

    def _settle(self, state: OrderState, write: Callable[..., OrderState], deadline: float) -> OrderState:
        """A write after the call, made again on the current state if only something else changed."""
        for _ in range(_CONFLICT_ROUNDS):
            try:
                return write(state, deadline=deadline)
            except StateChanged as changed:
                current = changed.current
                if current is None or not _same_call(current, state):
                    raise _NotRecorded(f"the plan was changed elsewhere ({changed.reason})") from None
                state = current
        raise _NotRecorded("the order kept changing")

    def _not_recorded(self, answered: _Answered, exc: Exception) -> RecordResult:
        logger.error(
            "the answer to a cancel call could not be recorded in the order state; it may be sent again",
            extra={"record_id": answered.inbound.record_id, "order_id": answered.plan.order_id},
        )
        status = answered.delivery.answer.status if answered.delivery.answer else None
        reason = f"Refersion answered {status}, but the order state was not updated ({exc})"
        return answered.result(Outcome.RETRY, reason)


@dataclass(frozen=True)
class _Answered:
    """One cancel call and its answer, and the outcome line it gives."""

    inbound: InboundRecord
    plan: CancelPlan
    index: int
    body: RefersionCancel
    delivery: Delivery
    resent: bool

    def result(
        self, outcome: Outcome, reason: str, *, maybe_received: bool = False, extra: str | None = None
    ) -> RecordResult:
        answer = self.delivery.answer
        extras = ((REFUND_UNANSWERED_RESENT,) if self.resent else ()) + ((extra,) if extra else ())
        return RecordResult(
            self.inbound.record_id,
            outcome,
            reason=reason,
            order_id=self.plan.order_id,
            http_status=answer.status if answer else None,
            latency_ms=answer.latency_ms if answer else None,
            attempts=self.delivery.attempts,
            retry_after_seconds=answer.retry_after_seconds if answer else None,
            body_logged=self.body.model_dump(mode="json"),
            kind=RecordKind.REFUND,
            maybe_received=maybe_received,
            extra_metrics=extras,
        )


def view_of(state: OrderState) -> OrderView:
    """The planner's view of a delivered order (CONTRACT §11's items as sent, what was cancelled, keys)."""
    if state.delivered is None:
        raise ValueError("only a delivered order has a view")
    return OrderView(
        currency=state.delivered.currency,
        items=tuple(OrderLine(sku=i.sku, price=i.price, quantity=i.quantity) for i in state.delivered.items),
        cancelled=tuple(OrderLine(sku=c.sku, price=c.price, quantity=c.quantity) for c in state.cancelled),
        refund_keys=tuple(sorted(state.refund_keys)),
    )


def build_refund_relay(
    settings: Settings,
    keys: KeyPairSource,
    states: OrderStates,
    *,
    clock: Callable[[], datetime] = _utc_now,
) -> RefundRelay:
    """The refund path: a second pooled client for the cancel URL, the same key pair and refresh rule."""
    client = RefersionClient(cancel_url(settings.api_url), settings.timeout_seconds, settings.max_concurrency)
    return RefundRelay(
        Deliverer(keys, client),
        states,
        wait=timedelta(minutes=settings.refund_wait_minutes),
        in_flight_seconds=settings.record_budget_seconds,
        clock=clock,
        on_close=client.close,
    )


def _result(
    inbound: InboundRecord,
    outcome: Outcome,
    reason: str,
    order_id: str | None,
    *,
    wait_seconds: float | None = None,
) -> RecordResult:
    return RecordResult(
        inbound.record_id,
        outcome,
        reason=reason,
        order_id=order_id,
        kind=RecordKind.REFUND,
        wait_seconds=wait_seconds,
    )


def _no_conversion(answer: HttpAnswer | None) -> bool:
    """Refersion's 422 "Invalid order ID (error 5)": it has no conversion for the order (yet)."""
    return answer is not None and answer.status == 422 and _NO_CONVERSION_TEXT in answer.detail.lower()


def _same_call(current: OrderState, state: OrderState) -> bool:
    return (current.cancel_plan, current.cancel_next_call, current.cancel_began_at) == (
        state.cancel_plan,
        state.cancel_next_call,
        state.cancel_began_at,
    )
