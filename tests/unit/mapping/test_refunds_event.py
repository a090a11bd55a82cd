"""The refund event (CONTRACT §9): what is read, what is refused and why, the keys that make it apply once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from mapping import InvalidEvent, RefundEvent, RefundLine, parse_refund, refund_keys


def event_with(message_id: Any = "msg-1", **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Refunded", "messageId": message_id, "properties": properties}


def reasons_of(event: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(InvalidEvent) as refused:
        parse_refund(event)
    return refused.value.reasons


# --- what is read ------------------------------------------------------------------------------------


def test_a_refund_without_products_is_a_full_refund() -> None:
    # Given a refund naming only the order
    refund = parse_refund(event_with(order_id="1001"))

    # Then it refunds the whole order
    assert refund.is_full
    assert refund.properties.lines is None
    assert refund.order_id == "1001"


@pytest.mark.parametrize(("raw", "order_id"), [(20150401102883, "20150401102883"), (" A-1 ", "A-1")])
def test_the_order_id_is_read_like_the_paid_orders_so_they_match(raw: Any, order_id: str) -> None:
    # Given an order id as a JSON number or a padded string / When read / Then it is the id the order had
    assert parse_refund(event_with(order_id=raw)).order_id == order_id


def test_products_become_lines_with_sku_else_product_id_optional_price_and_quantity() -> None:
    # Given products with a sku, a product_id only, a string quantity and no price
    products = [
        {"sku": "A", "price": "5.50", "quantity": 2},
        {"product_id": 77, "quantity": "3"},
    ]

    # When read
    refund = parse_refund(event_with(order_id="1001", products=products, refund_id=9, currency=" eur "))

    # Then each is a line in event order, and the optional ids and currency are clean
    assert refund.properties.lines == (RefundLine("A", Decimal("5.50"), 2), RefundLine("77", None, 3))
    assert refund.properties.lines_field == "products"
    assert refund.properties.refund_id == "9"
    assert refund.properties.currency == "EUR"
    assert not refund.is_full


def test_ga4_items_are_read_when_products_is_absent_and_ignored_beside_products() -> None:
    # Given a GA4 items list alone, and then beside products
    ga4 = [{"item_id": "G1", "price": 1, "quantity": 1}]
    alone = parse_refund(event_with(order_id="1", items=ga4))
    beside = parse_refund(
        event_with(order_id="1", items=[{"broken": True}], products=[{"sku": "P", "quantity": 1}])
    )

    # Then items are the lines when alone; products win (and broken items do not fail it) when both are there
    assert alone.properties.lines == (RefundLine("G1", Decimal(1), 1),)
    assert alone.properties.lines_field == "items"
    assert beside.properties.lines == (RefundLine("P", None, 1),)


def test_the_message_id_is_read_from_the_top_level_and_blank_counts_as_absent() -> None:
    # Given a messageId with spaces, and a blank one / Then one is trimmed, the other absent
    assert parse_refund(event_with(" m-7 ", order_id="1")).message_id == "m-7"
    assert parse_refund(event_with("  ", order_id="1")).message_id is None
    assert parse_refund({"properties": {"order_id": "1"}}).message_id is None


def test_no_customer_data_is_read_so_a_broken_context_cannot_fail_a_refund() -> None:
    # Given a refund whose context carries odd personal data
    event = event_with(order_id="1")
    event["context"] = {"ip": 5, "traits": {"email": ["jdoe@domain.com"]}}

    # When read / Then it is accepted and nothing of the context is kept
    refund = parse_refund(event)
    assert "context" not in refund.model_dump()


# --- what is refused ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({}, "properties.order_id: is required"),
        ({"order_id": "  "}, "properties.order_id: must not be empty"),
        ({"order_id": 1.5}, "properties.order_id: must be a string or a whole number, got 1.5"),
        (
            {"order_id": "1", "refund_id": True},
            "properties.refund_id: must be a string or a whole number, got true",
        ),
        ({"order_id": "1", "currency": "$"}, "properties.currency: '$' is not a three-letter currency code"),
        (
            {"order_id": "1", "products": []},
            "properties.products: at least one product is required when products is given"
            " (leave it out to refund all)",
        ),
        (
            {"order_id": "1", "items": []},
            "properties.items: at least one item is required when items is given"
            " (leave it out to refund all)",
        ),
        (
            {"order_id": "1", "products": None},
            "properties.products: must be a list, or left out to refund the whole order; got null",
        ),
        ({"order_id": "1", "products": {"sku": "A"}}, "properties.products: must be a list, got an object"),
    ],
)
def test_a_refund_breaking_a_rule_is_invalid_with_the_reason(properties: dict[str, Any], reason: str) -> None:
    # Given a refund with one problem / When read / Then it is refused with exactly that reason
    assert reasons_of(event_with(**properties)) == (reason,)


def test_every_problem_of_a_refund_is_listed_at_once() -> None:
    # Given a refund with a bad messageId, no order id and two broken product lines
    event = event_with(
        42,
        products=[{"price": "5,50", "quantity": 1}, {"sku": "B", "price": -1, "quantity": 0}],
    )

    # When read / Then every reason is given, each with its path
    assert reasons_of(event) == (
        "messageId: must be a string, got a number",
        "properties.order_id: is required",
        "properties.products[0].sku: is required (or a product_id)",
        "properties.products[0].price: '5,50' is not a plain number",
        "properties.products[1].price: -1 is negative; an amount must be 0 or more",
        "properties.products[1].quantity: must be a whole number of at least 1, got 0",
    )


def test_a_ga4_item_without_item_id_or_quantity_is_refused() -> None:
    # Given GA4 items missing what a line needs / Then each gap is named
    assert reasons_of(event_with(order_id="1", items=[{"price": 1}])) == (
        "properties.items[0].item_id: is required",
        "properties.items[0].quantity: is required",
    )


# --- once: the keys ------------------------------------------------------------------------------------


def parsed(message_id: Any = "msg-1", **properties: Any) -> RefundEvent:
    return parse_refund(event_with(message_id, **properties))


def test_a_refund_with_a_message_id_and_refund_id_is_checked_by_both_and_records_all_three_keys() -> None:
    # Given a refund with both ids / When its keys are taken
    keys = refund_keys(parsed("msg-1", order_id="1", refund_id="r1"))

    # Then the ids decide, and the content key is recorded too
    assert keys.message is not None
    assert keys.refund is not None
    assert keys.checked == (keys.message, keys.refund)
    assert keys.all == (keys.message, keys.refund, keys.content)
    assert [key.split(":")[0] for key in keys.all] == ["message", "refund", "content"]


def test_a_refund_with_neither_id_is_checked_by_its_order_and_items() -> None:
    # Given a refund with no messageId and no refund_id / Then only its content key decides
    keys = refund_keys(parsed(None, order_id="1", products=[{"sku": "A", "quantity": 1}]))
    assert (keys.message, keys.refund) == (None, None)
    assert keys.checked == (keys.content,) == keys.all


def test_the_refund_key_belongs_to_the_order_so_the_same_refund_id_elsewhere_is_another_refund() -> None:
    # Given the same refund_id on two orders / Then their refund keys differ; same order, same key
    first = refund_keys(parsed("m1", order_id="1", refund_id="r1")).refund
    again = refund_keys(parsed("m2", order_id="1", refund_id="r1")).refund
    other_order = refund_keys(parsed("m3", order_id="2", refund_id="r1")).refund
    assert first == again
    assert first != other_order


def test_the_content_key_is_stable_however_the_same_items_are_written() -> None:
    # Given the same request written differently: order of lines, split lines, 5.5 vs "5.50", GA4 items
    one = parsed(
        None, order_id="1", products=[{"sku": "A", "price": 5.5, "quantity": 2}, {"sku": "B", "quantity": 1}]
    )
    two = parsed(
        None,
        order_id="1",
        products=[
            {"product_id": "B", "quantity": "1"},
            {"sku": "A", "price": "5.50", "quantity": 1},
            {"sku": "A", "price": "5.5", "quantity": 1},
        ],
    )
    ga4 = parsed(
        None,
        order_id="1",
        items=[{"item_id": "B", "quantity": 1}, {"item_id": "A", "price": 5.5, "quantity": 2}],
    )

    # Then they have one content key; other quantities, another order or a full refund do not
    assert refund_keys(one).content == refund_keys(two).content == refund_keys(ga4).content
    more = parsed(
        None, order_id="1", products=[{"sku": "A", "price": 5.5, "quantity": 3}, {"sku": "B", "quantity": 1}]
    )
    assert refund_keys(more).content != refund_keys(one).content
    assert (
        refund_keys(parsed(None, order_id="2", products=[{"sku": "B", "quantity": 1}])).content
        != refund_keys(parsed(None, order_id="1", products=[{"sku": "B", "quantity": 1}])).content
    )
    assert refund_keys(parsed(None, order_id="1")).content != refund_keys(one).content


def test_keys_cannot_be_forged_by_putting_a_separator_inside_an_id() -> None:
    # Given order "1" refund "2|3" and order "1|2" refund "3" / Then they are different refunds
    left = refund_keys(parsed(None, order_id="1", refund_id="2|3")).refund
    right = refund_keys(parsed(None, order_id="1|2", refund_id="3")).refund
    assert left != right


def test_keys_are_short_fixed_length_digests_whatever_the_ids_hold() -> None:
    # Given a very long messageId with characters outside ASCII and a lone surrogate
    keys = refund_keys(parsed("é" * 10_000 + "\udcff", order_id="1", refund_id="x" * 5000))

    # Then every key is a prefix and 32 hex digits, so an order's record stays small
    for key in keys.all:
        prefix, digest = key.split(":")
        assert prefix in {"message", "refund", "content"}
        assert len(digest) == 32
        int(digest, 16)
