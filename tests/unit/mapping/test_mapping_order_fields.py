"""Order-level fields of CONTRACT §3: cart_id, order_id, currency, money, coupon, subscription."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import mapping

Build = Callable[..., dict[str, Any]]
Body = Callable[[Any], Any]
Reasons = Callable[[Any], tuple[str, ...]]


# --- cart_id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cart_id", "sent"),
    [("abc", "abc"), ("  abc  ", "abc"), ("x" * 255, "x" * 255), (" " + "x" * 255 + " ", "x" * 255)],
    ids=["plain", "stripped", "255-chars", "255-after-strip"],
)
def test_given_a_usable_cart_id_when_mapped_then_it_is_sent(
    order_event: Build, body_of: Body, cart_id: str, sent: str
) -> None:
    assert body_of(order_event(cart_id=cart_id))["cart_id"] == sent


@pytest.mark.parametrize(
    ("cart_id", "reason"),
    [
        ("", "properties.cart_id: must not be empty"),
        ("   ", "properties.cart_id: must not be empty"),
        ("x" * 256, "properties.cart_id: must be at most 255 characters long, got 256"),
        (None, "properties.cart_id: is required"),
        (12345, "properties.cart_id: must be a string, got a number"),
        (["abc"], "properties.cart_id: must be a string, got a list"),
    ],
    ids=["empty", "blank", "256-chars", "null", "number", "list"],
)
def test_given_a_bad_cart_id_when_mapped_then_it_is_refused(
    order_event: Build, reasons_of: Reasons, cart_id: object, reason: str
) -> None:
    assert reasons_of(order_event(cart_id=cart_id)) == (reason,)


def test_given_no_cart_id_when_mapped_then_it_is_required(order_event: Build, reasons_of: Reasons) -> None:
    assert reasons_of(order_event(drop=("cart_id",))) == ("properties.cart_id: is required",)


# --- order_id --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_id", "sent"),
    [("A-1", "A-1"), (" 42 ", "42"), (123, "123"), (0, "0"), (20150401102883, "20150401102883")],
)
def test_given_an_order_id_when_mapped_then_it_is_sent_as_a_string(
    order_event: Build, body_of: Body, order_id: object, sent: str
) -> None:
    assert body_of(order_event(order_id=order_id))["order_id"] == sent


@pytest.mark.parametrize(
    ("order_id", "reason"),
    [
        (True, "properties.order_id: must be a string or a whole number, got true"),
        (12.5, "properties.order_id: must be a string or a whole number, got 12.5"),
        (12.0, "properties.order_id: must be a string or a whole number, got 12.0"),
        ("", "properties.order_id: must not be empty"),
        ("  ", "properties.order_id: must not be empty"),
        (None, "properties.order_id: is required"),
        ({"id": 1}, "properties.order_id: must be a string or a whole number, got an object"),
    ],
    ids=["bool", "float", "integral-float", "empty", "blank", "null", "object"],
)
def test_given_a_bad_order_id_when_mapped_then_it_is_refused(
    order_event: Build, reasons_of: Reasons, order_id: object, reason: str
) -> None:
    assert reasons_of(order_event(order_id=order_id)) == (reason,)


# --- currency --------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "sent"), [("USD", "USD"), ("usd", "USD"), (" eUr ", "EUR")])
def test_given_a_currency_in_any_case_when_mapped_then_it_is_sent_upper_case(
    order_event: Build, body_of: Body, currency: str, sent: str
) -> None:
    assert body_of(order_event(currency=currency))["currency_code"] == sent


@pytest.mark.parametrize(
    ("currency", "reason"),
    [
        ("US", "properties.currency: 'US' is not a three-letter currency code"),
        ("U$D", "properties.currency: 'U$D' is not a three-letter currency code"),
        ("USDT", "properties.currency: 'USDT' is not a three-letter currency code"),
        ("ÜSD", "properties.currency: 'ÜSD' is not a three-letter currency code"),
        ("", "properties.currency: '' is not a three-letter currency code"),
        (840, "properties.currency: must be a three-letter currency code such as 'USD', got a number"),
        (None, "properties.currency: is required"),
    ],
)
def test_given_a_bad_currency_when_mapped_then_it_is_refused(
    order_event: Build, reasons_of: Reasons, currency: object, reason: str
) -> None:
    assert reasons_of(order_event(currency=currency)) == (reason,)


def test_given_no_currency_when_mapped_then_it_is_required(order_event: Build, reasons_of: Reasons) -> None:
    assert reasons_of(order_event(drop=("currency",))) == ("properties.currency: is required",)


# --- money -----------------------------------------------------------------------------

VALID_AMOUNTS = [
    (9.99, "9.99"),
    ("9.99", "9.99"),
    ("5.50", "5.5"),
    (" 5.50 ", "5.5"),
    (2, "2"),
    ("2", "2"),
    (0, "0"),
    (0.0, "0"),
    (-0.0, "0"),
    ("0.00", "0"),
    ("007.10", "7.1"),
    (0.1 + 0.2, "0.3"),
    (5.499999999999999, "5.5"),
    (1234567.891, "1234567.891"),
    ("123456789012.345", "123456789012.345"),
    (999999999999999, "999999999999999"),
]


@pytest.mark.parametrize("field", ["shipping", "tax", "discount"])
@pytest.mark.parametrize(("value", "expected"), VALID_AMOUNTS)
def test_given_a_money_amount_when_mapped_then_it_is_sent_as_an_exact_number(
    order_event: Build, body_of: Body, field: str, value: object, expected: str
) -> None:
    assert body_of(order_event(**{field: value}))[field] == Decimal(expected)


BAD_AMOUNTS = [
    ("$5.50", "'$5.50' is not a plain number"),
    ("1,000.00", "'1,000.00' is not a plain number"),
    ("5,50", "'5,50' is not a plain number"),
    ("NaN", "'NaN' is not a plain number"),
    ("Infinity", "'Infinity' is not a plain number"),
    ("1e5", "'1e5' is not a plain number"),
    (".5", "'.5' is not a plain number"),
    ("+5", "'+5' is not a plain number"),
    ("\u0665", "'\u0665' is not a plain number"),  # ARABIC-INDIC DIGIT FIVE: digits are ASCII only
    (math.nan, "NaN is not a valid amount"),
    (math.inf, "Infinity is not a valid amount"),
    (-math.inf, "-Infinity is not a valid amount"),
    (-1, "-1 is negative; an amount must be 0 or more"),
    (-0.01, "-0.01 is negative; an amount must be 0 or more"),
    ("-1.00", "'-1.00' is negative; an amount must be 0 or more"),
    (True, "must be a number, got true"),
    (False, "must be a number, got false"),
    ("", "is empty; expected a plain number such as '5.50'"),
    ("  ", "is empty; expected a plain number such as '5.50'"),
    ([5], "must be a number or a string such as '5.50', got a list"),
    ({"amount": 5}, "must be a number or a string such as '5.50', got an object"),
    ("1.0000000000000001", "has more than 15 significant digits"),
    (10**15, "1000000000000000 is too large for an amount"),
    ("1000000000000000", "'1000000000000000' is too large for an amount"),
    (1e300, "1e+300 is too large for an amount"),
    pytest.param(10**5000, "a very large number is too large for an amount", id="5000-digit-int"),
]


@pytest.mark.parametrize("field", ["shipping", "tax", "discount"])
@pytest.mark.parametrize(("value", "words"), BAD_AMOUNTS)
def test_given_a_bad_money_amount_when_mapped_then_it_is_refused(
    order_event: Build, reasons_of: Reasons, field: str, value: object, words: str
) -> None:
    (reason,) = reasons_of(order_event(**{field: value}))

    assert reason.startswith(f"properties.{field}: ")
    assert words in reason


def test_given_float_noise_when_serialised_then_the_body_text_has_none(order_event: Build) -> None:
    event = order_event(shipping=0.1 + 0.2, tax=5.499999999999999, discount=1.1 * 3)

    raw = mapping.map_order(event).to_json_bytes()

    assert b'"shipping":0.3,"tax":5.5,"discount":3.3,' in raw


@pytest.mark.parametrize("field", ["shipping", "tax", "discount"])
def test_given_an_absent_or_null_amount_when_mapped_then_it_is_omitted(
    order_event: Build, body_of: Body, field: str
) -> None:
    assert field not in body_of(order_event(drop=(field,)))
    assert field not in body_of(order_event(**{field: None}))


# --- discount_code -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coupon", "sent"),
    [
        ("HOLIDAY1", "HOLIDAY1"),
        (" HOLIDAY1 ", "HOLIDAY1"),
        (["A", "B"], "A,B"),
        (["A", "", "  ", None, " B "], "A,B"),
        (["ONLY"], "ONLY"),
    ],
)
def test_given_a_coupon_when_mapped_then_it_is_the_discount_code(
    order_event: Build, body_of: Body, coupon: object, sent: str
) -> None:
    assert body_of(order_event(coupon=coupon))["discount_code"] == sent


@pytest.mark.parametrize("coupon", ["", "  ", [], ["", None], None])
def test_given_an_empty_coupon_when_mapped_then_no_discount_code_is_sent(
    order_event: Build, body_of: Body, coupon: object
) -> None:
    assert "discount_code" not in body_of(order_event(coupon=coupon))


@pytest.mark.parametrize(
    ("coupon", "reason"),
    [
        (5, "properties.coupon: must be a string or a list of strings, got a number"),
        (["A", 5], "properties.coupon: must be a string or a list of strings"),
        ({"code": "A"}, "properties.coupon: must be a string or a list of strings, got an object"),
    ],
)
def test_given_a_bad_coupon_when_mapped_then_it_is_refused(
    order_event: Build, reasons_of: Reasons, coupon: object, reason: str
) -> None:
    assert reasons_of(order_event(coupon=coupon)) == (reason,)


# --- subscriptions -----------------------------------------------------------------------


def test_given_no_subscription_fields_when_mapped_then_none_are_sent(seed_event: Any, body_of: Body) -> None:
    body = body_of(seed_event)

    assert "is_subscription" not in body
    assert "subscription_id" not in body


@pytest.mark.parametrize(
    ("fields", "sent"),
    [
        (
            {"is_subscription": True, "subscription_id": "sub_1"},
            {"is_subscription": True, "subscription_id": "sub_1"},
        ),
        ({"is_subscription": False}, {"is_subscription": False}),
        ({"subscription_id": 77}, {"subscription_id": "77"}),
        ({"is_subscription": None, "subscription_id": None}, {}),
        ({"subscription_id": "  "}, {}),
    ],
)
def test_given_subscription_fields_when_mapped_then_they_are_sent_only_when_present(
    order_event: Build, body_of: Body, fields: dict[str, Any], sent: dict[str, Any]
) -> None:
    body = body_of(order_event(**fields))

    assert {key: body[key] for key in ("is_subscription", "subscription_id") if key in body} == sent


def test_given_subscription_fields_when_mapped_then_they_close_the_body(
    order_event: Build, body_of: Body
) -> None:
    body = body_of(order_event(is_subscription=True, subscription_id="s"))

    assert list(body)[-2:] == ["is_subscription", "subscription_id"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"is_subscription": "yes"}, "properties.is_subscription: must be true or false, got a string"),
        ({"is_subscription": 1}, "properties.is_subscription: must be true or false, got a number"),
        ({"subscription_id": 1.5}, "properties.subscription_id: must be a string or a whole number, got 1.5"),
        (
            {"subscription_id": False},
            "properties.subscription_id: must be a string or a whole number, got false",
        ),
    ],
)
def test_given_bad_subscription_fields_when_mapped_then_they_are_refused(
    order_event: Build, reasons_of: Reasons, fields: dict[str, Any], reason: str
) -> None:
    assert reasons_of(order_event(**fields)) == (reason,)


# --- several problems at once ------------------------------------------------------------


def test_given_several_problems_when_mapped_then_all_are_reported_together(
    order_event: Build, reasons_of: Reasons
) -> None:
    event = order_event(
        drop=("cart_id",),
        order_id=True,
        currency="US",
        shipping="$5.50",
        products=[{"sku": "A", "price": "1,000.00", "quantity": 0}, {"price": 1, "quantity": 1}],
    )

    reasons = reasons_of(event)

    assert reasons == (
        "properties.cart_id: is required",
        "properties.order_id: must be a string or a whole number, got true",
        "properties.currency: 'US' is not a three-letter currency code",
        "properties.shipping: '$5.50' is not a plain number",
        "properties.products[0].price: '1,000.00' is not a plain number",
        "properties.products[0].quantity: must be a whole number of at least 1, got 0",
        "properties.products[1].sku: is required (or a product_id)",
    )


def test_given_several_problems_when_refused_then_the_message_joins_the_reasons(order_event: Build) -> None:
    with pytest.raises(mapping.InvalidEvent) as refused:
        mapping.map_order(order_event(currency="US", tax=-1))

    assert str(refused.value) == "; ".join(refused.value.reasons)
    assert len(refused.value.reasons) == 2


def test_given_a_long_bad_value_when_refused_then_the_reason_quotes_only_its_start(
    order_event: Build, reasons_of: Reasons
) -> None:
    (reason,) = reasons_of(order_event(shipping="9" * 30 + "$" * 10_000))

    assert len(reason) < 120
    assert "..." in reason
