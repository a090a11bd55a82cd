"""Planning a refund (CONTRACT §9): what is cancelled, at which price, in how many calls, what is refused."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from mapping import (
    CancelPlan,
    InvalidEvent,
    OrderLine,
    OrderView,
    RefersionCancel,
    RefundDuplicate,
    RefundEvent,
    RefundSkipped,
    apply_call,
    parse_refund,
    plan_refund,
)


def line(sku: str, price: str, quantity: int) -> OrderLine:
    return OrderLine(sku=sku, price=Decimal(price), quantity=quantity)


def delivered(*lines: OrderLine, currency: str = "USD") -> OrderView:
    return OrderView(currency=currency, items=lines)


def refund(message_id: str | None = "m-1", **properties: Any) -> RefundEvent:
    event: dict[str, Any] = {"type": "track", "event": "Order Refunded", "properties": {"order_id": "1001"}}
    event["properties"].update(properties)
    if message_id is not None:
        event["messageId"] = message_id
    return parse_refund(event)


def planned(event: RefundEvent, view: OrderView | None) -> CancelPlan:
    plan = plan_refund(event, view)
    assert isinstance(plan, CancelPlan), plan
    return plan


def bodies(plan: CancelPlan) -> list[Any]:
    """The bodies POSTed, one per call, amounts read back exactly."""
    return [json.loads(plan.body(i).to_json_bytes(), parse_float=Decimal) for i in range(len(plan.calls))]


def executed(view: OrderView, plan: CancelPlan) -> OrderView:
    for index in range(len(plan.calls)):
        view = apply_call(view, plan, index)
    return view


def refused(event: RefundEvent, view: OrderView | None) -> tuple[str, ...]:
    with pytest.raises(InvalidEvent) as error:
        plan_refund(event, view)
    return error.value.reasons


ORDER = delivered(line("A", "5.50", 2), line("B", "10", 1), line("C", "0.1", 3))


# --- full refunds --------------------------------------------------------------------------------------


def test_a_full_refund_cancels_every_delivered_item_at_its_delivered_price_in_delivery_order() -> None:
    # Given a delivered order of three lines / When fully refunded
    plan = planned(refund(), ORDER)

    # Then one call cancels all of them, prices as plain JSON numbers
    assert plan.calls[0][0].price == Decimal("5.50")
    assert bodies(plan) == [
        {
            "order_id": "1001",
            "items": [
                {"sku": "A", "price": Decimal("5.5"), "quantity": 2},
                {"sku": "B", "price": 10.0, "quantity": 1},
                {"sku": "C", "price": Decimal("0.1"), "quantity": 3},
            ],
        }
    ]
    assert plan.body(0).to_json_bytes() == (
        b'{"order_id":"1001","items":[{"sku":"A","price":5.5,"quantity":2},'
        b'{"sku":"B","price":10.0,"quantity":1},{"sku":"C","price":0.1,"quantity":3}]}'
    )
    assert not plan.as_given


def test_a_full_refund_after_a_partial_one_cancels_only_what_is_left() -> None:
    # Given one A and the B already cancelled
    view = executed(
        ORDER,
        planned(refund("m-0", products=[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]), ORDER),
    )

    # When the order is then cancelled in full
    plan = planned(refund("m-1"), view)

    # Then only the other A and the three C go
    assert [item for body in bodies(plan) for item in body["items"]] == [
        {"sku": "A", "price": Decimal("5.5"), "quantity": 1},
        {"sku": "C", "price": Decimal("0.1"), "quantity": 3},
    ]


def test_partial_then_full_then_full_again_the_last_is_a_duplicate_with_nothing_left() -> None:
    # Given a partial refund, then a full cancellation, both executed
    view = executed(ORDER, planned(refund("m-1", products=[{"sku": "C", "quantity": 2}]), ORDER))
    view = executed(view, planned(refund("m-2"), view))
    assert view.remaining() == {}

    # When another full refund (a new event) arrives
    verdict = plan_refund(refund("m-3"), view)

    # Then nothing is sent: it is a duplicate, with the reason
    assert verdict == RefundDuplicate("nothing left to cancel: every delivered item was already cancelled")


def test_full_then_partial_the_partial_is_invalid_because_nothing_is_left_of_it() -> None:
    # Given an order cancelled in full
    view = executed(ORDER, planned(refund("m-1"), ORDER))

    # When a partial refund of one A follows / Then it is refused: nothing of A is left
    assert refused(refund("m-2", products=[{"sku": "A", "quantity": 1}]), view) == (
        "properties.products[0].quantity: 1 of sku 'A' at 5.50 asked,"
        " only 0 left to cancel (2 delivered, 2 already cancelled)",
    )


# --- partial refunds -----------------------------------------------------------------------------------


def test_a_partial_refund_cancels_the_listed_quantities_at_the_delivered_price() -> None:
    # Given a refund of one A whose event price differs from the delivered one (the sku has one price)
    plan = planned(refund(products=[{"sku": "A", "price": 4.0, "quantity": 1}]), ORDER)

    # Then one A is cancelled at 5.50, the price Refersion was told
    assert bodies(plan) == [
        {"order_id": "1001", "items": [{"sku": "A", "price": Decimal("5.5"), "quantity": 1}]}
    ]


def test_the_event_price_picks_among_lines_of_the_same_sku_delivered_at_two_prices() -> None:
    # Given sku A delivered at 5.50 and at 6 / When one A at "6.00" and one at 5.5 are refunded
    view = delivered(line("A", "5.50", 2), line("A", "6", 1))
    plan = planned(
        refund(
            products=[{"sku": "A", "price": "6.00", "quantity": 1}, {"sku": "A", "price": 5.5, "quantity": 1}]
        ),
        view,
    )

    # Then each is cancelled at its delivered price, in the event's order
    assert bodies(plan)[0]["items"] == [
        {"sku": "A", "price": Decimal("6"), "quantity": 1},
        {"sku": "A", "price": Decimal("5.5"), "quantity": 1},
    ]


def test_repeated_lines_of_one_sku_are_counted_together_and_sent_as_one_item() -> None:
    # Given a refund listing A twice (product_id on one, GA4 would be the same)
    plan = planned(
        refund(
            products=[
                {"sku": "A", "quantity": 1},
                {"sku": "C", "quantity": 1},
                {"product_id": "A", "quantity": 1},
            ]
        ),
        ORDER,
    )

    # Then A is cancelled once with quantity 2
    assert bodies(plan)[0]["items"] == [
        {"sku": "A", "price": Decimal("5.5"), "quantity": 2},
        {"sku": "C", "price": Decimal("0.1"), "quantity": 1},
    ]


def test_ga4_items_are_planned_like_products() -> None:
    # Given a partial refund as GA4 items / Then it cancels the same way
    plan = planned(refund(items=[{"item_id": "B", "quantity": 1}]), ORDER)
    assert bodies(plan)[0]["items"] == [{"sku": "B", "price": 10.0, "quantity": 1}]


@pytest.mark.parametrize(
    ("products", "reason"),
    [
        ([{"sku": "Z", "quantity": 1}], "properties.products[0].sku: 'Z' was not delivered in this order"),
        (
            [{"sku": "A", "quantity": 3}],
            "properties.products[0].quantity: 3 of sku 'A' at 5.50 asked,"
            " only 2 left to cancel (2 delivered, 0 already cancelled)",
        ),
        (
            [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 2}],
            "properties.products[0].quantity: 3 of sku 'A' at 5.50 asked (lines 0 and 2 together),"
            " only 2 left to cancel (2 delivered, 0 already cancelled)",
        ),
    ],
    ids=["sku-not-delivered", "too-many", "repeated-lines-too-many"],
)
def test_a_partial_refund_that_does_not_fit_the_order_is_invalid_with_the_reason(
    products: list[dict[str, Any]], reason: str
) -> None:
    # Given a partial refund that asks for what was not delivered / When planned / Then it is refused
    assert refused(refund(products=products), ORDER) == (reason,)


def test_a_line_that_cannot_be_told_apart_is_invalid() -> None:
    # Given sku A delivered at two prices
    view = delivered(line("A", "5.50", 2), line("A", "6", 1))

    # When a refund gives no price for A, or a price matching neither
    no_price = refused(refund(products=[{"sku": "A", "quantity": 1}]), view)
    other_price = refused(refund(products=[{"sku": "A", "price": "7", "quantity": 1}]), view)

    # Then each is refused, naming the prices to choose from
    assert no_price == (
        "properties.products[0].price: is required to tell the lines apart:"
        " sku 'A' was delivered at 2 prices (5.50 and 6)",
    )
    assert other_price == (
        "properties.products[0].price: 7 matches none of the prices sku 'A' was delivered at (5.50 and 6)",
    )


@pytest.mark.parametrize("currency", ["EUR", "eur"])
def test_a_refund_in_another_currency_than_the_order_is_invalid(currency: str) -> None:
    # Given an order in USD / When a refund says EUR / Then it is refused, whatever it lists
    assert refused(refund(currency=currency), ORDER) == (
        "properties.currency: 'EUR' is not the order's currency 'USD'",
    )
    assert isinstance(plan_refund(refund(currency=" usd "), ORDER), CancelPlan)


def test_every_line_problem_of_a_refund_is_listed_at_once() -> None:
    # Given a refund in another currency, with an unknown sku, an ambiguous line and too many of another sku
    view = delivered(line("A", "5.50", 2), line("A", "6", 1), line("B", "1", 1))
    event = refund(
        currency="CAD",
        products=[{"sku": "Z", "quantity": 1}, {"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}],
    )

    # When planned / Then the four reasons are given together, the lines' in line order
    assert refused(event, view) == (
        "properties.currency: 'CAD' is not the order's currency 'USD'",
        "properties.products[0].sku: 'Z' was not delivered in this order",
        "properties.products[1].price: is required to tell the lines apart:"
        " sku 'A' was delivered at 2 prices (5.50 and 6)",
        "properties.products[2].quantity: 2 of sku 'B' at 1 asked,"
        " only 1 left to cancel (1 delivered, 0 already cancelled)",
    )


def test_a_long_sku_is_shortened_in_the_reason() -> None:
    # Given a refund naming an unknown sku of 500 characters / Then the reason quotes only its start
    (reason,) = refused(refund(products=[{"sku": "S" * 500, "quantity": 1}]), ORDER)
    assert reason == f"properties.products[0].sku: '{'S' * 40}...' was not delivered in this order"


# --- once --------------------------------------------------------------------------------------------


def test_a_redelivered_refund_is_a_duplicate_not_judged_against_its_own_effect() -> None:
    # Given a partial refund of both A, executed
    event = refund("m-1", products=[{"sku": "A", "quantity": 2}])
    view = executed(ORDER, planned(event, ORDER))

    # When the same event comes again / Then it is a duplicate (not "nothing left of A")
    assert plan_refund(event, view) == RefundDuplicate("this refund was already applied (same messageId)")


def test_the_same_refund_id_under_a_new_message_id_is_a_duplicate() -> None:
    # Given refund r-1 of the order applied
    view = executed(
        ORDER, planned(refund("m-1", refund_id="r-1", products=[{"sku": "C", "quantity": 1}]), ORDER)
    )

    # When Datafly sends r-1 again as a new event / Then it is a duplicate
    again = refund("m-2", refund_id="r-1", products=[{"sku": "C", "quantity": 1}])
    assert plan_refund(again, view) == RefundDuplicate(
        "this refund was already applied (same order_id and refund_id)"
    )
    # And another refund id for the same items is another refund
    assert isinstance(
        plan_refund(refund("m-3", refund_id="r-2", products=[{"sku": "C", "quantity": 1}]), view), CancelPlan
    )


def test_a_refund_with_neither_id_is_a_duplicate_when_the_same_items_of_the_order_were_refunded() -> None:
    # Given a refund with no messageId nor refund_id, applied
    view = executed(ORDER, planned(refund(None, products=[{"sku": "C", "quantity": 1}]), ORDER))

    # When the same items come again without ids, or other items (another quantity, or a price now given)
    same = plan_refund(refund(None, products=[{"sku": "C", "quantity": 1}]), view)
    more = plan_refund(refund(None, products=[{"sku": "C", "quantity": 2}]), view)
    priced = plan_refund(refund(None, products=[{"sku": "C", "price": "0.10", "quantity": 1}]), view)

    # Then the same is a duplicate and the others are planned (the items are compared as written)
    assert same == RefundDuplicate(
        "this refund was already applied (same order and items; it has no messageId nor refund_id)"
    )
    assert isinstance(more, CancelPlan)
    assert isinstance(priced, CancelPlan)


def test_a_refund_with_an_id_is_judged_by_its_id_only_and_one_without_by_content_of_any_refund() -> None:
    # Given one C refunded by an event with a messageId
    view = executed(ORDER, planned(refund("m-1", products=[{"sku": "C", "quantity": 1}]), ORDER))

    # When another event with a new messageId asks for the same, and one without ids does
    with_id = plan_refund(refund("m-2", products=[{"sku": "C", "quantity": 1}]), view)
    without_ids = plan_refund(refund(None, products=[{"sku": "C", "quantity": 1}]), view)

    # Then the first is a new refund, the second a duplicate (CONTRACT §9: the same order and the same items)
    assert isinstance(with_id, CancelPlan)
    assert isinstance(without_ids, RefundDuplicate)


def test_a_refund_s_keys_are_recorded_with_its_last_call_only() -> None:
    # Given a full refund of 120 distinct items (three calls)
    view = delivered(*(line(f"S{n:03}", "1", 1) for n in range(120)))
    event = refund("m-1")
    plan = planned(event, view)

    # When the first two calls are executed / Then the keys are not yet recorded; after the third they are
    partly = apply_call(apply_call(view, plan, 0), plan, 1)
    assert partly.refund_keys == ()
    assert len(partly.remaining()) == 20
    done = apply_call(partly, plan, 2)
    assert done.refund_keys == plan.keys
    assert plan_refund(event, done) == RefundDuplicate("this refund was already applied (same messageId)")


# --- 50 items per call -----------------------------------------------------------------------------------


def test_more_than_fifty_items_are_split_into_calls_of_at_most_fifty_in_a_fixed_order() -> None:
    # Given 120 distinct delivered items / When fully refunded
    view = delivered(*(line(f"S{n:03}", f"{n}.25", 2) for n in range(120)))
    plan = planned(refund(), view)

    # Then three calls of 50, 50 and 20 items, in delivery order, and planning again gives the same plan
    sent = bodies(plan)
    assert [len(body["items"]) for body in sent] == [50, 50, 20]
    assert [item["sku"] for body in sent for item in body["items"]] == [f"S{n:03}" for n in range(120)]
    assert plan_refund(refund(), view) == plan
    assert executed(view, plan).remaining() == {}


def test_exactly_fifty_items_fit_in_one_call() -> None:
    # Given 50 distinct items / When fully refunded / Then one call
    view = delivered(*(line(f"S{n}", "1", 1) for n in range(50)))
    assert len(planned(refund(), view).calls) == 1


def test_the_cancel_body_refuses_more_than_fifty_items_or_none() -> None:
    # Given bodies of 51 and 0 items / When built / Then they are refused before any POST
    item = {"sku": "A", "price": Decimal(1), "quantity": 1}
    with pytest.raises(ValidationError):
        RefersionCancel.model_validate({"order_id": "1", "items": [item] * 51})
    with pytest.raises(ValidationError):
        RefersionCancel.model_validate({"order_id": "1", "items": []})


def test_amounts_go_out_without_float_noise() -> None:
    # Given an order delivered at 0.1 + 0.2 (read from JSON as 0.30000000000000004)
    event = parse_refund(
        {"properties": {"order_id": "9", "products": [{"sku": "A", "price": 0.1 + 0.2, "quantity": 1}]}}
    )

    # When sent as given / Then the price is 0.3
    assert (
        planned(event, None).body(0).to_json_bytes()
        == b'{"order_id":"9","items":[{"sku":"A","price":0.3,"quantity":1}]}'
    )


def test_a_plan_survives_a_trip_through_json() -> None:
    # Given a three-call plan / When stored as JSON and read back / Then it is the same plan
    view = delivered(*(line(f"S{n}", "1.10", 1) for n in range(120)))
    plan = planned(refund(refund_id="r"), view)
    stored = json.loads(json.dumps(plan.to_dict()))
    assert stored["calls"][0][0] == {"sku": "S0", "price": "1.10", "quantity": 1}
    assert CancelPlan.from_dict(stored) == plan


# --- an order the relay never saw -------------------------------------------------------------------------


def test_a_full_refund_of_an_unknown_order_is_skipped_with_the_reason() -> None:
    # Given no view of the order after the wait / When fully refunded / Then it is skipped
    assert plan_refund(refund(), None) == RefundSkipped(
        "nothing known to cancel: perhaps an order from before the relay was installed"
    )


def test_a_refund_with_products_of_an_unknown_order_is_sent_as_given() -> None:
    # Given no view, and a refund listing prices (A twice)
    event = refund(
        products=[
            {"sku": "A", "price": "5.50", "quantity": 1},
            {"sku": "B", "price": 3, "quantity": 2},
            {"sku": "A", "price": 5.5, "quantity": 1},
        ]
    )

    # When planned / Then the event's own items and prices are sent, lines of one sku and price merged
    plan = planned(event, None)
    assert plan.as_given
    assert bodies(plan)[0]["items"] == [
        {"sku": "A", "price": Decimal("5.5"), "quantity": 2},
        {"sku": "B", "price": 3.0, "quantity": 2},
    ]


def test_a_refund_of_an_unknown_order_without_prices_is_invalid() -> None:
    # Given no view, and a refund whose second line has no price / When planned / Then it is refused
    event = refund(products=[{"sku": "A", "price": 1, "quantity": 1}, {"sku": "B", "quantity": 1}])
    assert refused(event, None) == (
        "properties.products[1].price: is required: the relay never delivered this order,"
        " so the refund is sent as given",
    )


def test_a_refund_of_an_unknown_order_already_sent_is_a_duplicate() -> None:
    # Given a refund sent as given, whose keys the edge recorded outside any view
    event = refund(products=[{"sku": "A", "price": 1, "quantity": 1}])
    plan = planned(event, None)

    # When it comes again / Then it is a duplicate
    assert plan_refund(event, None, applied_keys=plan.keys) == RefundDuplicate(
        "this refund was already applied (same messageId)"
    )
