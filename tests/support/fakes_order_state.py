"""An in-memory OrderStates with the DynamoDB store's semantics: versions, conditions, idempotent repeats.

For unit tests of the relay; tests/integration/test_order_state.py runs the same transition tests
against this fake and the DynamoDB store so that the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from handler.order_state import (
    DEFAULT_ORDER_RECORD_DAYS,
    Confirmation,
    Delivered,
    ItemLine,
    LastPost,
    OrderState,
    RejectedRecord,
    StateChanged,
    StateUnavailable,
    after_plan_call,
    merge_lines,
    plan_to_store,
)
from mapping.refunds import CancelPlan


class InMemoryOrderStates:
    """OrderStates in a dict. `outage` makes the next N calls raise StateUnavailable (an AWS-side fault)."""

    def __init__(
        self,
        *,
        record_days: int = DEFAULT_ORDER_RECORD_DAYS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._states: dict[str, OrderState] = {}
        self._confirmations: dict[str, Confirmation] = {}
        self.expirations: dict[str, int] = {}
        self._record_seconds = record_days * 24 * 60 * 60
        self._clock = clock
        self._lock = threading.Lock()
        self.outage = 0
        self.calls = 0

    def get(self, order_id: str, *, deadline: float | None = None) -> OrderState | None:
        with self._lock:
            self._call()
            return self._states.get(order_id)

    def confirmations_for(self, order_id: str, *, deadline: float | None = None) -> tuple[Confirmation, ...]:
        with self._lock:
            self._call()
            state = self._states.get(order_id)
            ids = state.confirmations if state else frozenset()
            found = [self._confirmations[cid] for cid in ids if cid in self._confirmations]
            return tuple(sorted(found, key=lambda c: (c.received_at, c.conversion_id)))

    def mark_seen(self, order_id: str, *, deadline: float | None = None) -> OrderState:
        with self._lock:
            current = self._current(order_id)
            return self._write(current, seen_at=current.seen_at or self._clock())

    def mark_post_began(self, order_id: str, at: datetime, *, deadline: float | None = None) -> OrderState:
        with self._lock:
            current = self._current(order_id)
            if current.delivered is not None:
                raise StateChanged(order_id, "the order is already delivered", current)
            return self._write(current, post_began_at=at)

    def mark_answered(
        self, order_id: str, answered: bool, at: datetime, *, deadline: float | None = None
    ) -> OrderState:
        with self._lock:
            current = self._current(order_id)
            if current.last_post is not None and current.last_post.at > at:
                raise StateChanged(order_id, "a later post was recorded", current)
            return self._write(current, last_post=LastPost(answered, at))

    def mark_delivered(
        self,
        order_id: str,
        body_digest: str,
        items: Sequence[ItemLine],
        currency: str,
        at: datetime,
        *,
        deadline: float | None = None,
    ) -> OrderState:
        with self._lock:
            current = self._current(order_id)
            if current.delivered is not None:
                if current.delivered.body_digest == body_digest:
                    return current
                raise StateChanged(order_id, "delivered already with another body", current)
            delivered = Delivered(at, body_digest, tuple(items), currency)
            return self._write(current, delivered=delivered, last_post=LastPost(True, at))

    def mark_post_not_sent(
        self, order_id: str, began_at: datetime, previous: datetime | None, *, deadline: float | None = None
    ) -> OrderState:
        with self._lock:
            current = self._current(order_id)
            if current.post_began_at != began_at:
                raise StateChanged(order_id, "another post began since", current)
            return self._write(current, post_began_at=previous)

    def mark_rejected(
        self, order_id: str, rejected: RejectedRecord, *, deadline: float | None = None
    ) -> OrderState:
        with self._lock:
            current = self._current(order_id)
            kept = sorted({*current.rejected_records, rejected}, key=lambda r: (r.at, r.record_id))
            return self._write(current, rejected_records=tuple(kept))

    def record_cancel(
        self,
        state: OrderState,
        refund_keys: Iterable[str],
        cancelled_items: Sequence[ItemLine],
        *,
        deadline: float | None = None,
    ) -> OrderState:
        with self._lock:
            current = self._expect(state)
            return self._write(
                current,
                cancelled=merge_lines(state.cancelled, cancelled_items),
                refund_keys=current.refund_keys | frozenset(refund_keys),
            )

    def store_cancel_plan(
        self, state: OrderState, plan: CancelPlan, *, deadline: float | None = None
    ) -> OrderState:
        with self._lock:
            current = self._expect(state)
            if current.cancel_plan is not None:
                raise StateChanged(state.order_id, f"expected version {state.version}", current)
            return self._write(current, cancel_plan=plan, cancel_next_call=0, cancel_began_at=None)

    def advance_cancel_plan(self, state: OrderState, *, deadline: float | None = None) -> OrderState:
        with self._lock:
            cancelled, keys, plan, next_call = after_plan_call(state)
            current = self._expect(state)
            return self._write(
                current,
                cancelled=cancelled,
                refund_keys=keys,
                cancel_plan=plan,
                cancel_next_call=next_call,
                cancel_began_at=None,
            )

    def mark_cancel_began(
        self, state: OrderState, plan: CancelPlan, at: datetime, *, deadline: float | None = None
    ) -> OrderState:
        with self._lock:
            stored = plan_to_store(state, plan)
            current = self._expect(state)
            next_call = current.cancel_next_call if current.cancel_plan else 0
            return self._write(current, cancel_plan=stored, cancel_next_call=next_call, cancel_began_at=at)

    def clear_cancel_began(self, state: OrderState, *, deadline: float | None = None) -> OrderState:
        with self._lock:
            if state.cancel_plan is None:
                raise StateChanged(state.order_id, "no cancel plan is stored", state)
            current = self._expect(state)
            return self._write(current, cancel_began_at=None)

    def drop_cancel_plan(self, state: OrderState, *, deadline: float | None = None) -> OrderState:
        with self._lock:
            current = self._expect(state)
            return self._write(current, cancel_plan=None, cancel_next_call=0, cancel_began_at=None)

    def put_confirmation(self, confirmation: Confirmation, *, deadline: float | None = None) -> bool:
        with self._lock:
            self._call()
            new = confirmation.conversion_id not in self._confirmations
            self._confirmations.setdefault(confirmation.conversion_id, confirmation)
            current = self._states.get(confirmation.order_id) or OrderState(confirmation.order_id)
            linked = current.confirmations | {confirmation.conversion_id}
            self._store(dataclasses.replace(current, confirmations=linked))
            return new

    def _call(self) -> None:
        self.calls += 1
        if self.outage > 0:
            self.outage -= 1
            raise StateUnavailable("ThrottlingException")

    def _current(self, order_id: str) -> OrderState:
        self._call()
        return self._states.get(order_id) or OrderState(order_id)

    def _expect(self, state: OrderState) -> OrderState:
        current = self._current(state.order_id)
        if current.version != state.version:
            found = self._states.get(state.order_id)
            raise StateChanged(
                state.order_id, f"expected version {state.version}, found {current.version}", found
            )
        return current

    def _write(self, current: OrderState, **changes: object) -> OrderState:
        updated = dataclasses.replace(current, version=current.version + 1, **changes)  # type: ignore[arg-type]
        self._store(updated)
        return updated

    def _store(self, state: OrderState) -> None:
        self._states[state.order_id] = state
        self.expirations[state.order_id] = int(self._clock().timestamp()) + self._record_seconds
