"""Line items of CONTRACT §3: products[] (or GA4 items[]) -> items[]."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

Build = Callable[..., dict[str, Any]]
Body = Callable[[Any], Any]
Reasons = Callable[[Any], tuple[str, ...]]


def test_given_several_products_when_mapped_then_each_becomes_an_item_in_order(
    order_event: Build, body_of: Body
) -> None:
    products = [
        {"sku": "A", "name": "Alpha", "price": 1.25, "quantity": 1},
        {"sku": "B", "price": "3.00", "quantity": "4", "category": "ignored"},
    ]

    body = body_of(order_event(products=products))

    assert body["items"] == [
        {"sku": "A", "name": "Alpha", "price": Decimal("1.25"), "quantity": 1},
        {"sku": "B", "price": Decimal("3"), "quantity": 4},
    ]


# --- sku -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "sku"),
    [
        ({"sku": "PROD_A"}, "PROD_A"),
        ({"sku": " PROD_A "}, "PROD_A"),
        ({"sku": 1001}, "1001"),
        ({"sku": "PROD_A", "product_id": "P-9"}, "PROD_A"),
        ({"sku": None, "product_id": "P-9"}, "P-9"),
        ({"sku": "", "product_id": 9}, "9"),
        ({"product_id": "P-9"}, "P-9"),
    ],
    ids=["sku", "stripped", "integer", "sku-wins", "null-sku", "empty-sku", "product-id-only"],
)
def test_given_a_sku_or_product_id_when_mapped_then_it_is_the_item_sku(
    product_event: Build, body_of: Body, fields: dict[str, Any], sku: str
) -> None:
    event = product_event(drop=("sku",), **fields)

    assert body_of(event)["items"][0]["sku"] == sku


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "properties.products[0].sku: is required (or a product_id)"),
        ({"sku": "  ", "product_id": None}, "properties.products[0].sku: is required (or a product_id)"),
        ({"sku": True}, "properties.products[0].sku: must be a string or a whole number, got true"),
        ({"sku": 1.5}, "properties.products[0].sku: must be a string or a whole number, got 1.5"),
        (
            {"product_id": ["P"]},
            "properties.products[0].product_id: must be a string or a whole number, got a list",
        ),
    ],
    ids=["missing", "blank", "bool", "float", "list-product-id"],
)
def test_given_no_usable_sku_when_mapped_then_it_is_refused(
    product_event: Build, reasons_of: Reasons, fields: dict[str, Any], reason: str
) -> None:
    assert reasons_of(product_event(drop=("sku",), **fields)) == (reason,)


# --- name ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "   "])
def test_given_no_product_name_when_mapped_then_the_item_has_none(
    product_event: Build, body_of: Body, name: object
) -> None:
    assert "name" not in body_of(product_event(name=name))["items"][0]


def test_given_a_non_string_name_when_mapped_then_it_is_refused(
    product_event: Build, reasons_of: Reasons
) -> None:
    assert reasons_of(product_event(name=42)) == (
        "properties.products[0].name: must be a string, got a number",
    )


# --- price -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "sent"), [(5.5, "5.5"), ("5.50", "5.5"), (0, "0"), (19.989999999999998, "19.99")]
)
def test_given_a_unit_price_when_mapped_then_it_is_sent_exactly(
    product_event: Build, body_of: Body, price: object, sent: str
) -> None:
    assert body_of(product_event(price=price))["items"][0]["price"] == Decimal(sent)


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("$5.50", "properties.products[0].price: '$5.50' is not a plain number"),
        (-5, "properties.products[0].price: -5 is negative; an amount must be 0 or more"),
        (None, "properties.products[0].price: is required"),
        (True, "properties.products[0].price: must be a number, got true"),
    ],
)
def test_given_a_bad_price_when_mapped_then_it_is_refused(
    product_event: Build, reasons_of: Reasons, price: object, reason: str
) -> None:
    assert reasons_of(product_event(price=price)) == (reason,)


def test_given_no_price_when_mapped_then_it_is_required(product_event: Build, reasons_of: Reasons) -> None:
    assert reasons_of(product_event(drop=("price",))) == ("properties.products[0].price: is required",)


# --- quantity --------------------------------------------------------------------------


@pytest.mark.parametrize(("quantity", "sent"), [(1, 1), (2, 2), ("2", 2), (" 12 ", 12), (3.0, 3), ("007", 7)])
def test_given_a_whole_quantity_when_mapped_then_it_is_sent_as_an_integer(
    product_event: Build, body_of: Body, quantity: object, sent: int
) -> None:
    item = body_of(product_event(quantity=quantity))["items"][0]

    assert item["quantity"] == sent
    assert type(item["quantity"]) is int


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        (0, "must be a whole number of at least 1, got 0"),
        (-1, "must be a whole number of at least 1, got -1"),
        (1.5, "must be a whole number of at least 1, got 1.5"),
        ("1.5", "must be a whole number of at least 1, got '1.5'"),
        ("two", "must be a whole number of at least 1, got 'two'"),
        ("0", "must be a whole number of at least 1, got '0'"),
        ("", "must be a whole number of at least 1, got ''"),
        (True, "must be a whole number of at least 1, got true"),
        ([2], "must be a whole number of at least 1, got a list"),
        (float("nan"), "must be a whole number of at least 1, got NaN"),
        (float("inf"), "must be a whole number of at least 1, got Infinity"),
        (2**53, "9007199254740992 is too large for a quantity"),
        (None, "is required"),
    ],
)
def test_given_a_bad_quantity_when_mapped_then_it_is_refused(
    product_event: Build, reasons_of: Reasons, quantity: object, reason: str
) -> None:
    assert reasons_of(product_event(quantity=quantity)) == (f"properties.products[0].quantity: {reason}",)


# --- the list itself ---------------------------------------------------------------------


def test_given_no_products_when_mapped_then_at_least_one_is_required(
    order_event: Build, reasons_of: Reasons
) -> None:
    assert reasons_of(order_event(drop=("products",))) == (
        "properties.products: at least one product is required",
    )


@pytest.mark.parametrize("products", [[], None])
def test_given_empty_or_null_products_when_mapped_then_at_least_one_is_required(
    order_event: Build, reasons_of: Reasons, products: object
) -> None:
    assert reasons_of(order_event(products=products)) == (
        "properties.products: at least one product is required",
    )


@pytest.mark.parametrize(
    ("products", "reason"),
    [
        ("PROD_A", "properties.products: must be a list, got a string"),
        ({"sku": "A"}, "properties.products: must be a list, got an object"),
        (["PROD_A"], "properties.products[0]: must be an object, got a string"),
        ([None], "properties.products[0]: must be an object, got null"),
    ],
)
def test_given_malformed_products_when_mapped_then_they_are_refused(
    order_event: Build, reasons_of: Reasons, products: object, reason: str
) -> None:
    assert reasons_of(order_event(products=products)) == (reason,)


# --- GA4 items -------------------------------------------------------------------------

GA4_ITEMS = [
    {
        "item_id": "SKU_1",
        "item_name": "Stan and Friends Tee",
        "price": 10.01,
        "quantity": 3,
        "item_brand": "x",
    },
    {"item_id": 77, "price": "2.50", "quantity": "1"},
]


def test_given_ga4_items_and_no_products_when_mapped_then_they_become_items(
    order_event: Build, body_of: Body
) -> None:
    body = body_of(order_event(drop=("products",), items=GA4_ITEMS))

    assert body["items"] == [
        {"sku": "SKU_1", "name": "Stan and Friends Tee", "price": Decimal("10.01"), "quantity": 3},
        {"sku": "77", "price": Decimal("2.5"), "quantity": 1},
    ]


def test_given_ga4_items_and_null_products_when_mapped_then_the_items_are_used(
    order_event: Build, body_of: Body
) -> None:
    assert body_of(order_event(products=None, items=GA4_ITEMS))["items"][0]["sku"] == "SKU_1"


def test_given_products_and_ga4_items_when_mapped_then_products_win_and_items_are_not_read(
    order_event: Build, body_of: Body
) -> None:
    body = body_of(order_event(items=[{"item_id": None, "price": "$$$"}, "garbage"]))

    assert body["items"] == [{"sku": "PROD_A", "name": "Product A", "price": Decimal("5.5"), "quantity": 2}]


@pytest.mark.parametrize(
    ("items", "reasons"),
    [
        ([], ("properties.items: at least one item is required",)),
        (
            [{"item_name": "x", "price": "1,5", "quantity": 0}],
            (
                "properties.items[0].item_id: is required",
                "properties.items[0].price: '1,5' is not a plain number",
                "properties.items[0].quantity: must be a whole number of at least 1, got 0",
            ),
        ),
        ("SKU_1", ("properties.items: must be a list, got a string",)),
    ],
    ids=["empty", "bad-item", "not-a-list"],
)
def test_given_bad_ga4_items_when_mapped_then_they_are_refused(
    order_event: Build, reasons_of: Reasons, items: object, reasons: tuple[str, ...]
) -> None:
    assert reasons_of(order_event(drop=("products",), items=items)) == reasons
