"""order_ids_of: the ids a log line shows for an event that is not delivered, by the mapping's own rules."""

from __future__ import annotations

from typing import Any

import pytest

from mapping import OrderIds, order_ids_of


@pytest.mark.parametrize(
    ("properties", "ids"),
    [
        ({"order_id": " O-1 ", "cart_id": " c-1 "}, ("O-1", "c-1")),
        ({"order_id": 1234}, ("1234", None)),
        ({"order_id": True, "cart_id": 7}, (None, None)),  # a bool is no id; a cart_id must be a string
        ({"order_id": 1.5, "cart_id": "   "}, (None, None)),  # a float is no id; blank is absent
        ({"order_id": 10**70, "cart_id": "c" * 256}, (None, None)),  # too long for an id, or a cart_id
        ({"cart_id": "c-2"}, (None, "c-2")),  # one bad or missing id does not hide the other
    ],
)
def test_each_id_is_read_on_its_own_with_the_rules_of_the_order(
    properties: dict[str, Any], ids: tuple[str | None, str | None]
) -> None:
    assert order_ids_of({"event": "Order Completed", "properties": properties}) == OrderIds(*ids)


@pytest.mark.parametrize("event", [{}, {"properties": "O-1"}, {"properties": None}])
def test_an_event_without_properties_has_no_ids(event: dict[str, Any]) -> None:
    assert order_ids_of(event) == OrderIds(None, None)


def test_a_very_long_order_id_is_cut_for_the_log_line() -> None:
    assert order_ids_of({"properties": {"order_id": "9" * 1000}}).order_id == "9" * 255
