"""Which events are refunds (CONTRACT §9): Order Refunded, Order Cancelled / Canceled, named as orders are."""

from __future__ import annotations

from typing import Any

import pytest

from mapping import EventKind, classify_event


@pytest.mark.parametrize(
    "name",
    [
        "Order Refunded",
        "order refunded",
        "ORDER REFUNDED",
        "order_refunded",
        "Order_Refunded",
        " Order Refunded  ",
    ],
)
@pytest.mark.parametrize("event_type", [None, "track", " TRACK "])
def test_an_order_refunded_name_in_any_case_with_spaces_or_underscores_is_a_refund(
    name: str, event_type: str | None
) -> None:
    # Given an Order Refunded event spelled one of the accepted ways
    event: dict[str, Any] = {"event": name, "properties": {"order_id": "1001"}}
    if event_type is not None:
        event["type"] = event_type

    # When it is classified / Then it is a refund, and not an order to post
    kind = classify_event(event)
    assert kind is not EventKind.ORDER_COMPLETED
    assert kind is EventKind.ORDER_REFUNDED
    assert kind.is_refund


@pytest.mark.parametrize(
    "name",
    [
        "Order Cancelled",
        "Order Canceled",
        "order_cancelled",
        "order_canceled",
        "ORDER CANCELLED",
        "Order_Canceled",
        "\tOrder Cancelled\n",
    ],
)
def test_both_spellings_of_order_cancelled_are_a_cancellation(name: str) -> None:
    # Given an Order Cancelled event, British or American spelling
    event = {"type": "track", "event": name, "properties": {"order_id": "1001"}}

    # When it is classified / Then it is one kind, a refund in effect
    kind = classify_event(event)
    assert kind is EventKind.ORDER_CANCELLED
    assert kind.is_refund


@pytest.mark.parametrize(
    "event",
    [
        {"type": "identify", "event": "Order Refunded"},
        {"type": "page", "event": "order_cancelled"},
        {"type": "track", "event": "Order  Refunded"},
        {"type": "track", "event": "OrderRefunded"},
        {"type": "track", "event": "Order Refunded!"},
        {"type": "track", "event": "Order_Cancelled_"},
        {"type": "track", "event": "Order Cancel"},
        {"type": "track", "event": "order-refunded"},
    ],
)
def test_refund_like_names_that_break_the_naming_rules_are_dropped_as_other(event: dict[str, Any]) -> None:
    # Given a refund-looking name of another type or spelling / When classified / Then it is OTHER
    assert classify_event(event) is EventKind.OTHER


def test_only_order_completed_is_an_order_to_post_and_only_refunds_say_is_refund() -> None:
    # Given every kind / Then ORDER_COMPLETED is the one order kind, and the refund kinds are refunds
    assert {kind for kind in EventKind if kind.is_refund} == {
        EventKind.ORDER_REFUNDED,
        EventKind.ORDER_CANCELLED,
    }
    assert classify_event({"type": "track", "event": "Order Completed"}) is EventKind.ORDER_COMPLETED
    assert not EventKind.ORDER_COMPLETED.is_refund
    assert not EventKind.OTHER.is_refund


def test_the_refund_kinds_are_plain_strings_for_logs() -> None:
    # Given the new kinds, seen as the str they are (mypy would compare enum and str literals)
    refunded: str = EventKind.ORDER_REFUNDED
    cancelled: str = EventKind.ORDER_CANCELLED
    # Then they log as readable strings
    assert refunded == "order_refunded"
    assert cancelled == "order_cancelled"
