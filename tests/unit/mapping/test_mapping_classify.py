"""Which events are orders (CONTRACT §2): Order Completed in any case or snake_case; the rest is dropped."""

from __future__ import annotations

from typing import Any

import pytest

from mapping import EventKind, InvalidEvent, classify_event


@pytest.mark.parametrize(
    "name",
    [
        "Order Completed",
        "order completed",
        "ORDER COMPLETED",
        "order_completed",
        "Order_Completed",
        "  Order Completed ",
    ],
)
@pytest.mark.parametrize("event_type", [None, "track", "TRACK", " Track "])
def test_given_an_order_completed_name_when_classified_then_it_is_an_order(
    name: str, event_type: str | None
) -> None:
    event: dict[str, Any] = {"event": name, "properties": {}}
    if event_type is not None:
        event["type"] = event_type

    assert classify_event(event) is EventKind.ORDER_COMPLETED


@pytest.mark.parametrize(
    "event",
    [
        {"type": "track", "event": "Product Added"},
        {"type": "track", "event": "Order Returned"},
        {"type": "track", "event": "Order Refund"},
        {"type": "track", "event": "Order  Completed"},
        {"type": "track", "event": "OrderCompleted"},
        {"type": "track", "event": "Order Completed!"},
        {"event": "Checkout Started"},
        {"type": "identify", "traits": {"email": "jdoe@domain.com"}},
        {"type": "page", "name": "Home"},
        {"type": "screen", "name": "Cart"},
        {"type": "group", "groupId": "g1"},
        {"type": "alias", "previousId": "a"},
        {"type": "identify", "event": "Order Completed"},
        {"type": "page", "event": "order_completed"},
        {"type": "track"},
        {"type": "track", "event": 5},
    ],
)
def test_given_any_other_datafly_event_when_classified_then_it_is_other(event: dict[str, Any]) -> None:
    assert classify_event(event) is EventKind.OTHER


def test_given_the_kinds_when_compared_then_they_are_plain_strings() -> None:
    # Seen as the str they are (mypy would compare enum and str literals)
    completed: str = EventKind.ORDER_COMPLETED
    other: str = EventKind.OTHER
    assert completed == "order_completed"
    assert other == "other"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (None, "event: must be a JSON object, got null"),
        ([], "event: must be a JSON object, got a list"),
        ("Order Completed", "event: must be a JSON object, got a string"),
        (42, "event: must be a JSON object, got a number"),
        (True, "event: must be a JSON object, got true"),
    ],
)
def test_given_a_non_object_when_classified_then_it_is_invalid(event: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        classify_event(event)

    assert refused.value.reasons == (reason,)


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"foo": 1},
        {"event": ""},
        {"event": "  "},
        {"event": None},
        {"type": 5},
        {"type": ""},
        {"event": ["x"]},
    ],
)
def test_given_an_object_that_is_not_a_datafly_event_when_classified_then_it_is_invalid(
    event: dict[str, Any],
) -> None:
    with pytest.raises(InvalidEvent) as refused:
        classify_event(event)

    (reason,) = refused.value.reasons
    assert reason.startswith("event: ")
    assert "'event' name" in reason
    assert "'type'" in reason
