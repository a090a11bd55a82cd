"""Posting an order with the order state as the relay's memory (CONTRACT §10, §11; issues 11-13).

Who writes what, for each Order Completed (when IDEMPOTENCY_TABLE_NAME is set), inside Powertools'
idempotency lock (handler.idempotency):

    mark_seen                  one attempt, before anything; returns the state the decisions below read
    -> delivered already:      duplicate, nothing posted (even once Powertools' 14-day record is gone)
    -> this record rejected:   rejected again with the remembered status, nothing posted (issue 13)
    -> post in doubt, confirmations on: a confirmation -> delivered (mark_delivered); none and within
                               CONFIRMATION_WAIT_SECONDS of the post -> waiting; none after -> post again
    mark_post_began            one attempt, right before each post (so a killed invocation leaves it)
    POST
    then, retried until the record's deadline:
      2xx                      mark_delivered (items as sent, currency, body digest)
      other status             mark_answered(answered) [+ mark_rejected for a 4xx: this record's memory]
      no status, bytes left    mark_answered(unanswered)
      nothing sent             mark_post_not_sent (the mark goes back to what it was)

Writes before the post are tried once: if the store is unavailable nothing is posted and the record
comes back. Writes after the post are retried within the record's budget, because the post happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from handler.config import Settings
from handler.delivery import Deliverer, Delivery, PostNotBegun
from handler.idempotency import body_digest, duplicate_delivery
from handler.observability import DYNAMODB, count_delivered_not_recorded, count_dependency_failure, logger
from handler.order_state import (
    ItemLine,
    OrderState,
    OrderStates,
    RejectedRecord,
    StateChanged,
    StateUnavailable,
)
from handler.outcomes import Outcome
from mapping import RefersionOrder

CONFIRMED = "confirmed by Refersion"


class RememberingDeliverer:
    """Posts an order once, reading and writing its order state around the post."""

    def __init__(
        self,
        states: OrderStates,
        deliverer: Deliverer,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._states = states
        self._deliverer = deliverer
        self._confirmations = settings.confirmations_enabled
        self._wait_seconds = settings.confirmation_wait_seconds
        self._clock = clock

    def deliver(self, record_id: str, order: RefersionOrder, body: bytes, deadline: float) -> Delivery:
        digest = body_digest(body)
        try:
            state = self._states.mark_seen(order.order_id)
        except StateUnavailable as exc:
            return _unavailable_before_post("order_state_write", exc)
        settled = self._settled(record_id, order, state, digest, deadline)
        if isinstance(settled, Delivery):
            return settled
        marks = _PostMarks(self._states, order.order_id, state.post_began_at, self._clock)
        delivery = self._deliverer.deliver(body, before_post=marks.began)
        delivery = self._after_post(
            record_id, order=order, digest=digest, delivery=delivery, marks=marks, deadline=deadline
        )
        return _noted(delivery, settled)

    def _settled(
        self, record_id: str, order: RefersionOrder, state: OrderState, digest: str, deadline: float
    ) -> Delivery | str:
        """The delivery decided from the state without a post, or a note for the post's reason."""
        if state.delivered is not None:
            delivered_at = state.delivered.at.isoformat(timespec="seconds")
            same_body = state.delivered.body_digest == digest
            return duplicate_delivery(delivered_at, same_body, source=" (order state)")
        rejected = state.rejection_of(record_id)
        if rejected is not None:
            reason = f"{rejected.reason} (this record was rejected before; not posted again)"
            return Delivery(Outcome.REJECTED, reason=reason, http_status=rejected.status)
        if self._confirmations and state.post_in_doubt:
            return self._confirmed_or_waiting(order, state, digest, deadline)
        return ""

    def _confirmed_or_waiting(
        self, order: RefersionOrder, state: OrderState, digest: str, deadline: float
    ) -> Delivery | str:
        """CONTRACT §10: the last post went unanswered; Refersion's confirmation says whether it counted."""
        try:
            confirmations = self._states.confirmations_for(order.order_id)
        except StateUnavailable as exc:
            return _unavailable_before_post("order_state_read", exc)
        if confirmations:
            conversions = ", ".join(c.conversion_id for c in confirmations)[:200]
            delivery = Delivery(Outcome.DELIVERED, reason=f"{CONFIRMED} (conversion {conversions})")
            return self._record_delivered(order, digest, delivery, deadline)
        began = state.post_began_at or self._clock()  # set: the post is in doubt
        waited = (self._clock() - began).total_seconds()
        if waited < self._wait_seconds:
            left = self._wait_seconds - waited
            reason = (
                f"last post unanswered ({began.isoformat(timespec='seconds')}): waiting up to "
                f"{self._wait_seconds} s for Refersion's confirmation before posting again"
            )
            return Delivery(Outcome.WAITING, reason=reason, wait_seconds=left)
        return f"posted again: no confirmation within {self._wait_seconds} s of the unanswered post"

    def _after_post(
        self,
        record_id: str,
        *,
        order: RefersionOrder,
        digest: str,
        delivery: Delivery,
        marks: _PostMarks,
        deadline: float,
    ) -> Delivery:
        answer, began = delivery.answer, marks.began_at
        if answer is None or began is None:
            return delivery  # never posted (keys unavailable, or the post-began mark failed)
        order_id = order.order_id
        if answer.nothing_sent:
            previous = marks.previous
            self._write(lambda: self._states.mark_post_not_sent(order_id, began, previous, deadline=deadline))
            return delivery
        if delivery.outcome is Outcome.DELIVERED:
            return self._record_delivered(order, digest, delivery, deadline)
        now, answered = self._clock(), answer.status is not None
        self._write(lambda: self._states.mark_answered(order_id, answered, now, deadline=deadline))
        if delivery.outcome is Outcome.REJECTED and answer.status is not None:
            rejected = RejectedRecord(record_id, answer.status, delivery.reason, now)
            self._write(lambda: self._states.mark_rejected(order_id, rejected, deadline=deadline))
        return delivery

    def _record_delivered(
        self, order: RefersionOrder, digest: str, delivery: Delivery, deadline: float
    ) -> Delivery:
        items = [ItemLine(item.sku, item.price, item.quantity) for item in order.items]

        def write() -> None:
            self._states.mark_delivered(
                order.order_id, digest, items, order.currency_code, self._clock(), deadline=deadline
            )

        cause = self._write(write)
        if cause is None:
            return delivery
        count_delivered_not_recorded(cause)
        logger.error("order delivered but not recorded in the order state", extra={"cause": cause})
        note = f"delivered but not recorded ({cause}): a later copy of this order could be posted again"
        return _noted(delivery, note)

    def _write(self, write: Callable[[], object]) -> str | None:
        """A write after the post: None once done (or made moot by a concurrent one), else its cause."""
        try:
            write()
        except StateChanged as exc:
            logger.info("order state moved on meanwhile", extra={"reason": exc.reason})
        except StateUnavailable as exc:
            count_dependency_failure(DYNAMODB, "order_state_write")
            logger.warning("order state not written after the post", extra={"cause": exc.cause})
            return exc.cause
        return None


class _PostMarks:
    """The post-began mark, written right before each post (a key refresh posts twice)."""

    def __init__(
        self,
        states: OrderStates,
        order_id: str,
        previous: datetime | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._states = states
        self._order_id = order_id
        self._clock = clock
        self.previous = previous
        self.began_at: datetime | None = None

    def began(self) -> None:
        at = self._clock()
        try:
            self._states.mark_post_began(self._order_id, at)
        except StateUnavailable as exc:
            count_dependency_failure(DYNAMODB, "order_state_write")
            raise PostNotBegun(f"order state unavailable ({exc.cause}): not posted") from None
        except StateChanged as exc:
            raise PostNotBegun(f"not posted: {exc.reason}") from None
        self.began_at = at


def _unavailable_before_post(operation: str, exc: StateUnavailable) -> Delivery:
    count_dependency_failure(DYNAMODB, operation)
    return Delivery(Outcome.RETRY, reason=f"order state unavailable ({exc.cause}): not posted")


def _noted(delivery: Delivery, note: str) -> Delivery:
    if not note:
        return delivery
    reason = f"{delivery.reason}; {note}" if delivery.reason else note
    return replace(delivery, reason=reason)
