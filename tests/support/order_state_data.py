"""Shared data of the order-state tests: a fixed clock, a body digest, items with awkward prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from handler.order_state import ItemLine, OrderState, OrderStates

T0 = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
DIGEST = "a" * 64
ITEMS = (ItemLine("PROD_A", Decimal("5.50"), 2), ItemLine("PROD_B", Decimal("19.999"), 1))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def delivered(store: OrderStates, order_id: str = "1001") -> OrderState:
    store.mark_seen(order_id)
    store.mark_post_began(order_id, T0)
    return store.mark_delivered(order_id, DIGEST, ITEMS, "USD", T0 + timedelta(seconds=1))
