"""Refund planning (CONTRACT §9): never more cancelled than delivered, and a full refund takes the rest."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping import (
    CancelPlan,
    InvalidEvent,
    OrderLine,
    OrderView,
    RefundDuplicate,
    apply_call,
    parse_refund,
    plan_refund,
)

SKUS = ("A", "B", "C", "D")
PRICES = (Decimal("0"), Decimal("0.1"), Decimal("5.50"), Decimal("6"))


@st.composite
def delivered_orders(draw: st.DrawFn) -> OrderView:
    """Any delivered order: up to 8 lines over a few skus and prices, repeats allowed."""
    lines = draw(
        st.lists(
            st.builds(
                OrderLine,
                sku=st.sampled_from(SKUS),
                price=st.sampled_from(PRICES),
                quantity=st.integers(min_value=1, max_value=4),
            ),
            min_size=1,
            max_size=8,
        )
    )
    return OrderView(currency="USD", items=tuple(lines))


@st.composite
def partial_refunds(draw: st.DrawFn, view: OrderView, number: int) -> tuple[dict[str, Any], bool]:
    """A partial refund of some remaining lines, split over repeated entries, and whether it fits.

    It may ask for up to 2 more of a line than is left, so that a refund that does not fit is tried too.
    """
    remaining = view.remaining()
    keys = draw(st.lists(st.sampled_from(sorted(remaining, key=str)), min_size=1, max_size=4, unique=True))
    prices_of_sku = {sku: {price for (s, price) in view.delivered() if s == sku} for sku, _ in keys}
    products: list[dict[str, Any]] = []
    fits = True
    for sku, price in keys:
        total = draw(st.integers(min_value=1, max_value=remaining[(sku, price)] + 2))
        fits = fits and total <= remaining[(sku, price)]
        parts = draw(st.integers(min_value=1, max_value=total))
        sizes = [total // parts + (1 if index < total % parts else 0) for index in range(parts)]
        # The price is needed only when the sku was delivered at several prices; give it as text sometimes.
        needs_price = len(prices_of_sku[sku]) > 1
        for size in sizes:
            product: dict[str, Any] = {"sku": sku, "quantity": size}
            if needs_price or draw(st.booleans()):
                product["price"] = str(price) if draw(st.booleans()) else float(price)
            products.append(product)
    products = draw(st.permutations(products))
    return {"messageId": f"m-{number}", "properties": {"order_id": "1", "products": products}}, fits


def executed(view: OrderView, plan: CancelPlan) -> OrderView:
    for index in range(len(plan.calls)):
        view = apply_call(view, plan, index)
    return view


@settings(max_examples=100, derandomize=True, deadline=None)
@given(view=delivered_orders(), data=st.data())
def test_partial_refunds_never_cancel_more_than_delivered_and_a_full_refund_cancels_exactly_the_rest(
    view: OrderView, data: st.DataObject
) -> None:
    # Given any delivered order and any sequence of partial refunds, some asking for more than is left
    delivered = view.delivered()
    refunds = data.draw(st.integers(min_value=0, max_value=6), label="partial refunds")
    for number in range(refunds):
        if not view.remaining():
            break
        body, fits = data.draw(partial_refunds(view, number), label=f"refund {number}")
        event = parse_refund(body)
        # When each is planned: one that does not fit is refused and changes nothing; the others are executed
        if not fits:
            with pytest.raises(InvalidEvent):
                plan_refund(event, view)
            continue
        plan = plan_refund(event, view)
        assert isinstance(plan, CancelPlan), plan
        assert all(1 <= len(call) <= 50 for call in plan.calls)
        view = executed(view, plan)

        # Then the sum cancelled per (sku, price) never exceeds what was delivered
        cancelled = view.cancelled_so_far()
        assert set(cancelled) <= set(delivered)
        assert all(cancelled[key] <= delivered[key] for key in cancelled)

    # When the order is then refunded in full
    left = view.remaining()
    verdict = plan_refund(parse_refund({"messageId": "full", "properties": {"order_id": "1"}}), view)

    # Then it cancels exactly what was left at the delivered prices (nothing left: a duplicate)
    if not left:
        assert isinstance(verdict, RefundDuplicate)
        return
    assert isinstance(verdict, CancelPlan)
    sent = [(line.sku, line.price, line.quantity) for call in verdict.calls for line in call]
    assert sorted(sent, key=str) == sorted(
        ((sku, price, count) for (sku, price), count in left.items()), key=str
    )
    after = executed(view, verdict)
    assert after.remaining() == {}
    assert after.cancelled_so_far() == delivered
