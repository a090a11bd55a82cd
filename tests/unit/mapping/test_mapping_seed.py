"""The seed page's example must map exactly (CONTRACT §3, last rule)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import mapping


def test_given_the_seed_event_when_mapped_then_the_body_is_the_seed_body(
    seed_event: dict[str, Any], seed_body: Any, body_of: Any
) -> None:
    assert body_of(seed_event) == seed_body


def test_given_the_seed_event_when_mapped_then_keys_come_in_the_seed_order(
    seed_event: dict[str, Any], seed_body: Any, body_of: Any
) -> None:
    body = body_of(seed_event)

    assert list(body) == list(seed_body)
    assert list(body["customer"]) == list(seed_body["customer"])
    assert list(body["items"][0]) == list(seed_body["items"][0])


def test_given_the_seed_event_when_serialised_then_the_body_is_compact_utf8_json(
    seed_event: dict[str, Any],
) -> None:
    raw = mapping.map_order(seed_event).to_json_bytes()

    assert raw == (
        b'{"cart_id":"DDXqfBngTWuX8N8Asqr2mY3RkmHCXdM7Vz6mdHkjwrEnN5zyRY","order_id":"20150401102883",'
        b'"currency_code":"USD","shipping":9.99,"tax":0.57,"discount":2.25,"discount_code":"HOLIDAY1",'
        b'"customer":{"first_name":"John","last_name":"Doe","email":"jdoe@domain.com",'
        b'"ip_address":"234.192.4.75"},'
        b'"items":[{"sku":"PROD_A","name":"Product A","price":5.5,"quantity":2}]}'
    )


def test_given_the_seed_event_when_classified_then_it_is_an_order(seed_event: dict[str, Any]) -> None:
    assert mapping.classify_event(seed_event) is mapping.EventKind.ORDER_COMPLETED


def test_given_the_seed_event_when_logged_then_email_and_ip_are_masked(seed_event: dict[str, Any]) -> None:
    log_body = mapping.map_order(seed_event).to_log_dict()

    assert log_body["customer"]["email"] == "j***@d***.com"
    assert log_body["customer"]["ip_address"] == "234.192.x.x"
    assert "jdoe@domain.com" not in json.dumps(log_body)
    assert "234.192.4.75" not in json.dumps(log_body)
    # Everything else is the body as sent, as plain JSON values.
    assert log_body["items"] == [{"sku": "PROD_A", "name": "Product A", "price": 5.5, "quantity": 2}]
    assert log_body["shipping"] == 9.99


def test_given_the_seed_event_when_mapped_then_the_model_holds_exact_amounts(
    seed_event: dict[str, Any],
) -> None:
    order = mapping.map_order(seed_event)

    assert order.shipping == Decimal("9.99")
    assert order.items[0].price == Decimal("5.5")
    assert order.customer is not None
    assert order.customer.email == "jdoe@domain.com"
