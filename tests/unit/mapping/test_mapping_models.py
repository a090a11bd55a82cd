"""The public types themselves: InvalidEvent and the Refersion body models."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pydantic
import pytest

import mapping
from mapping import InvalidEvent, RefersionCustomer, RefersionItem, RefersionOrder

ITEM = RefersionItem(sku="A", price=Decimal("5.50"), quantity=2)


def _order(**fields: Any) -> RefersionOrder:
    values: dict[str, Any] = {"cart_id": "c1", "order_id": "o1", "currency_code": "USD", "items": (ITEM,)}
    values.update(fields)
    return RefersionOrder(**values)


# --- InvalidEvent ------------------------------------------------------------------------


def test_given_reasons_when_raised_then_the_message_joins_them() -> None:
    error = InvalidEvent(["a: is required", "b: must be a list, got null"])

    assert error.reasons == ("a: is required", "b: must be a list, got null")
    assert str(error) == "a: is required; b: must be a list, got null"


def test_given_a_single_string_when_raised_then_it_is_one_reason() -> None:
    assert InvalidEvent("event: must be a JSON object, got null").reasons == (
        "event: must be a JSON object, got null",
    )


def test_given_an_invalid_event_error_when_pickled_then_its_reasons_survive() -> None:
    error = InvalidEvent(("a: x", "b: y"))

    copied = pickle.loads(pickle.dumps(error))

    assert copied.reasons == error.reasons
    assert str(copied) == str(error)


def test_given_a_refused_event_when_raised_then_pydantic_details_are_not_chained(
    seed_event: dict[str, Any],
) -> None:
    seed_event["context"]["traits"]["email"] = ["jdoe@domain.com"]

    with pytest.raises(InvalidEvent) as refused:
        mapping.map_order(seed_event)

    # A chained ValidationError would print the raw email into any traceback log.
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


# --- the body models ---------------------------------------------------------------------


def test_given_an_empty_customer_when_an_order_is_built_then_customer_is_left_out() -> None:
    order = _order(customer=RefersionCustomer())

    assert order.customer is None
    assert b"customer" not in order.to_json_bytes()


def test_given_an_order_when_changed_then_it_refuses() -> None:
    order = _order()

    with pytest.raises(pydantic.ValidationError):
        order.cart_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields",
    [
        {"shipping": 0.1},  # floats carry noise: amounts are Decimals
        {"shipping": Decimal("-1")},
        {"shipping": Decimal("NaN")},
        {"items": ()},
        {"currency_code": "usd"},
        {"cart_id": ""},
        {"unknown": 1},
    ],
)
def test_given_values_that_break_the_body_rules_when_an_order_is_built_then_it_refuses(
    fields: dict[str, Any],
) -> None:
    with pytest.raises(pydantic.ValidationError):
        _order(**fields)


def test_given_an_order_without_customer_when_logged_then_the_log_dict_is_the_body() -> None:
    assert _order().to_log_dict() == {
        "cart_id": "c1",
        "order_id": "o1",
        "currency_code": "USD",
        "items": [{"sku": "A", "price": 5.5, "quantity": 2}],
    }


def test_given_a_customer_without_email_when_logged_then_other_fields_are_kept() -> None:
    order = _order(customer=RefersionCustomer(first_name="John", ip_address="2001:db8::7"))

    assert order.to_log_dict()["customer"] == {"first_name": "John", "ip_address": "2001:db8:x:x:x:x:x:x"}


def test_given_an_order_when_logged_then_the_order_itself_is_unchanged(seed_event: dict[str, Any]) -> None:
    order = mapping.map_order(seed_event)
    before = order.to_json_bytes()

    order.to_log_dict()

    assert order.to_json_bytes() == before


# --- inputs that are mappings but not dicts ----------------------------------------------


def test_given_a_read_only_mapping_when_mapped_then_it_maps_like_a_dict(seed_event: dict[str, Any]) -> None:
    frozen = copy.deepcopy(seed_event)
    frozen["properties"]["products"][0] = MappingProxyType({"product_id": "P1", "price": 1, "quantity": 1})
    frozen["properties"] = MappingProxyType(frozen["properties"])

    order = mapping.map_order(MappingProxyType(frozen))

    assert mapping.classify_event(MappingProxyType(frozen)) is mapping.EventKind.ORDER_COMPLETED
    assert order.items[0].sku == "P1"


def test_given_an_event_when_mapped_then_the_input_is_not_modified(seed_event: dict[str, Any]) -> None:
    seed_event["properties"]["products"] = [{"product_id": "P1", "price": 1, "quantity": 1}]
    seed_event["properties"]["items"] = [{"item_id": "G"}]
    before = copy.deepcopy(seed_event)

    mapping.map_order(seed_event)

    assert seed_event == before
