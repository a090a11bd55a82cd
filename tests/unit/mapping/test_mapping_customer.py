"""customer{} (CONTRACT §3): email (never a hash), names, IP; omitted when empty; no PII in reasons."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

import mapping

Body = Callable[[Any], Any]
Reasons = Callable[[Any], tuple[str, ...]]

HASHED_EMAIL = hashlib.sha256(b"jdoe@domain.com").hexdigest()


def _with_context(seed_event: dict[str, Any], context: object) -> dict[str, Any]:
    event = copy.deepcopy(seed_event)
    event["context"] = context
    return event


def _with_traits(seed_event: dict[str, Any], **traits: object) -> dict[str, Any]:
    event = copy.deepcopy(seed_event)
    event["context"]["traits"] = traits
    return event


@pytest.mark.parametrize("email", [HASHED_EMAIL, HASHED_EMAIL.upper()], ids=["lower-hex", "upper-hex"])
def test_given_a_sha256_hashed_email_when_mapped_then_no_email_is_sent(
    seed_event: dict[str, Any], body_of: Body, email: str
) -> None:
    customer = body_of(_with_traits(seed_event, email=email, first_name="John"))["customer"]

    assert customer == {"first_name": "John", "ip_address": "234.192.4.75"}


@pytest.mark.parametrize(
    ("email", "sent"),
    [
        ("jdoe@domain.com", "jdoe@domain.com"),
        ("  jdoe@domain.com \n", "jdoe@domain.com"),
        ("not-quite-an-email", "not-quite-an-email"),  # Refersion takes what it gets
        (HASHED_EMAIL[:63], HASHED_EMAIL[:63]),  # 63 hex digits: not a SHA-256 digest
    ],
)
def test_given_a_clear_email_when_mapped_then_it_is_sent(
    seed_event: dict[str, Any], body_of: Body, email: str, sent: str
) -> None:
    assert body_of(_with_traits(seed_event, email=email))["customer"]["email"] == sent


@pytest.mark.parametrize("email", ["", "   ", None])
def test_given_an_empty_email_when_mapped_then_none_is_sent(
    seed_event: dict[str, Any], body_of: Body, email: object
) -> None:
    assert "email" not in body_of(_with_traits(seed_event, email=email, last_name="Doe"))["customer"]


def test_given_camel_case_names_when_mapped_then_they_are_accepted(
    seed_event: dict[str, Any], body_of: Body
) -> None:
    customer = body_of(_with_traits(seed_event, firstName="John", lastName="Doe"))["customer"]

    assert customer == {"first_name": "John", "last_name": "Doe", "ip_address": "234.192.4.75"}


def test_given_both_name_spellings_when_mapped_then_snake_case_wins_unless_blank(
    seed_event: dict[str, Any], body_of: Body
) -> None:
    event = _with_traits(seed_event, first_name="John", firstName="Johnny", last_name=" ", lastName="Doe")

    customer = body_of(event)["customer"]

    assert (customer["first_name"], customer["last_name"]) == ("John", "Doe")


def test_given_only_an_ip_when_mapped_then_the_customer_has_only_the_ip(
    seed_event: dict[str, Any], body_of: Body
) -> None:
    assert body_of(_with_context(seed_event, {"ip": " 2001:db8::1 "}))["customer"] == {
        "ip_address": "2001:db8::1"
    }


@pytest.mark.parametrize(
    "context",
    [
        None,
        {},
        {"ip": "", "traits": {}},
        {"ip": None, "traits": None},
        {"traits": {"email": HASHED_EMAIL, "first_name": " "}},
        {"library": {"name": "datafly.js"}, "consent": {"marketing": True}},
    ],
    ids=["null", "empty", "blank-ip-no-traits", "nulls", "hash-and-blank", "unrelated"],
)
def test_given_no_customer_data_when_mapped_then_customer_is_omitted(
    seed_event: dict[str, Any], body_of: Body, context: object
) -> None:
    assert "customer" not in body_of(_with_context(seed_event, context))


def test_given_no_context_when_mapped_then_customer_is_omitted(
    seed_event: dict[str, Any], body_of: Body
) -> None:
    del seed_event["context"]

    assert "customer" not in body_of(seed_event)


@pytest.mark.parametrize(
    ("context", "reason"),
    [
        ("ctx", "context: must be an object, got a string"),
        ({"traits": ["jdoe@domain.com"]}, "context.traits: must be an object, got a list"),
        ({"ip": 3237085515}, "context.ip: must be a string, got a number"),
        ({"traits": {"email": ["jdoe@domain.com"]}}, "context.traits.email: must be a string, got a list"),
        ({"traits": {"email": 1234567}}, "context.traits.email: must be a string, got a number"),
        (
            {"traits": {"first_name": {"x": "John"}}},
            "context.traits.first_name: must be a string, got an object",
        ),
        ({"traits": {"lastName": 7}}, "context.traits.lastName: must be a string, got a number"),
    ],
)
def test_given_wrongly_typed_customer_data_when_mapped_then_it_is_refused_without_echoing_it(
    seed_event: dict[str, Any], reasons_of: Reasons, context: object, reason: str
) -> None:
    assert reasons_of(_with_context(seed_event, context)) == (reason,)


def test_given_personal_values_in_a_refused_event_when_reasons_are_given_then_none_are_echoed(
    seed_event: dict[str, Any],
) -> None:
    event = _with_context(
        seed_event,
        {
            "ip": ["198.51.100.23"],
            "traits": {"email": {"v": "secret.person@example.org"}, "firstName": ["Zebulon"]},
        },
    )
    event["properties"]["currency"] = "XX"

    with pytest.raises(mapping.InvalidEvent) as refused:
        mapping.map_order(event)

    text = str(refused.value)
    assert len(refused.value.reasons) == 4
    for secret in ("198.51.100.23", "secret.person", "example.org", "Zebulon"):
        assert secret not in text


def test_given_any_valid_event_when_mapped_then_the_body_has_no_nulls(
    seed_event: dict[str, Any],
) -> None:
    seed_event["properties"].update(shipping=None, tax=None, discount=None, coupon=None, is_subscription=None)
    seed_event["properties"]["products"][0]["name"] = None
    seed_event["context"] = {"ip": None, "traits": {"email": None, "first_name": None}}

    raw = mapping.map_order(seed_event).to_json_bytes()

    assert b"null" not in raw
    assert json.loads(raw) == {
        "cart_id": "DDXqfBngTWuX8N8Asqr2mY3RkmHCXdM7Vz6mdHkjwrEnN5zyRY",
        "order_id": "20150401102883",
        "currency_code": "USD",
        "items": [{"sku": "PROD_A", "price": 5.5, "quantity": 2}],
    }


def test_given_non_ascii_names_when_serialised_then_they_are_utf8(seed_event: dict[str, Any]) -> None:
    seed_event["context"]["traits"] = {"first_name": "Zoë", "last_name": "Ōtani"}

    raw = mapping.map_order(seed_event).to_json_bytes()

    assert '"first_name":"Zoë","last_name":"Ōtani"'.encode() in raw
