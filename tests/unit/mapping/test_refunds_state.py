"""The delivered-order view refunds are planned against (CONTRACT §11, part): from the body, plain JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from mapping import OrderLine, OrderView, map_order


def test_the_view_of_a_delivered_order_holds_its_items_as_sent_and_nothing_cancelled(
    order_event: Any,
) -> None:
    # Given an order delivered with two lines, one price written as a string
    event = order_event(
        currency="eur",
        products=[
            {"sku": "A", "price": "5.50", "quantity": 2},
            {"product_id": 9, "price": 0.1, "quantity": 1},
        ],
    )

    # When its view is built from the body that was sent
    view = OrderView.from_delivered(map_order(event))

    # Then it holds the items (sku, unit price as delivered, quantity), the currency, and no cancellations
    assert view.to_dict() == {
        "currency": "EUR",
        "items": [{"sku": "A", "price": "5.50", "quantity": 2}, {"sku": "9", "price": "0.1", "quantity": 1}],
        "cancelled": [],
        "refund_keys": [],
    }


def test_a_view_survives_a_trip_through_json_exactly() -> None:
    # Given a view with items, cancellations and keys
    view = OrderView(
        currency="USD",
        items=(
            OrderLine(sku="A", price=Decimal("5.50"), quantity=2),
            OrderLine(sku="B", price=Decimal("1E-7"), quantity=1),
        ),
        cancelled=(OrderLine(sku="A", price=Decimal("5.50"), quantity=1),),
        refund_keys=("message:00", "content:11"),
    )

    # When written as JSON text and read back
    again = OrderView.from_dict(json.loads(json.dumps(view.to_dict())))

    # Then it is the same view, prices spelled as they were delivered
    assert again == view
    assert again.to_dict()["items"][0]["price"] == "5.50"


def test_a_view_read_back_from_dynamodb_numbers_is_accepted() -> None:
    # Given the view as boto3's DynamoDB resource gives it back (numbers as Decimal)
    stored = {
        "currency": "USD",
        "items": [{"sku": "A", "price": "5.50", "quantity": Decimal(2)}],
        "cancelled": [{"sku": "A", "price": "5.50", "quantity": Decimal(1)}],
        "refund_keys": [],
    }

    # When read / Then quantities are whole numbers again
    view = OrderView.from_dict(stored)
    assert view.remaining() == {("A", Decimal("5.5")): 1}


@pytest.mark.parametrize(
    "broken",
    [
        {"currency": "usd", "items": [{"sku": "A", "price": "1", "quantity": 1}]},
        {"currency": "USD", "items": []},
        {"currency": "USD", "items": [{"sku": "", "price": "1", "quantity": 1}]},
        {"currency": "USD", "items": [{"sku": "A", "price": "-1", "quantity": 1}]},
        {"currency": "USD", "items": [{"sku": "A", "price": "NaN", "quantity": 1}]},
        {"currency": "USD", "items": [{"sku": "A", "price": "1", "quantity": 0}]},
        {"currency": "USD", "items": [{"sku": "A", "price": "1", "quantity": 1.5}]},
        {"currency": "USD", "items": [{"sku": "A", "price": "1", "quantity": 1}], "extra": 1},
    ],
)
def test_a_malformed_stored_view_is_refused_rather_than_planned_against(broken: dict[str, Any]) -> None:
    # Given a stored view that no delivery could have written / When read / Then it is refused
    with pytest.raises(ValidationError):
        OrderView.from_dict(broken)


def test_lines_of_the_same_sku_and_price_count_together_and_cancellations_merge() -> None:
    # Given an order that sent sku A at 5.50 on two lines, and at 6 on a third
    view = OrderView(
        currency="USD",
        items=(
            OrderLine(sku="A", price=Decimal("5.50"), quantity=2),
            OrderLine(sku="A", price=Decimal("6"), quantity=1),
            OrderLine(sku="A", price=Decimal("5.5"), quantity=3),
        ),
    )

    # When two cancellations of A at 5.5 are recorded
    after = view.with_cancelled([OrderLine(sku="A", price=Decimal("5.5"), quantity=1)])
    after = after.with_cancelled([OrderLine(sku="A", price=Decimal("5.50"), quantity=2)])

    # Then 5.5 and 5.50 are one line at Refersion (5 delivered, 3 cancelled, 2 left); the view is unchanged
    assert view.delivered() == {("A", Decimal("5.50")): 5, ("A", Decimal("6")): 1}
    assert after.to_dict()["cancelled"] == [{"sku": "A", "price": "5.5", "quantity": 3}]
    assert after.remaining() == {("A", Decimal("5.50")): 2, ("A", Decimal("6")): 1}
    assert view.cancelled == ()


def test_refund_keys_are_recorded_once_each_in_the_order_first_seen() -> None:
    # Given a view with one key / When keys are added, one of them again / Then each is kept once
    view = OrderView(
        currency="USD", items=(OrderLine(sku="A", price=Decimal(1), quantity=1),), refund_keys=("k1",)
    )
    assert view.with_refund_keys(["k2", "k1", "k3", "k2"]).refund_keys == ("k1", "k2", "k3")
