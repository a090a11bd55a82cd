"""CONTRACT §11 order state: each transition, conditional conflicts, keys, TTL, exact decimals, write retries.

The transition tests run against the DynamoDB store (moto server over HTTP) and the in-memory fake
alike, so that the fake the relay's unit tests use cannot drift from the real store.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from handler.order_state import (
    Confirmation,
    ItemLine,
    OrderState,
    OrderStates,
    StateChanged,
)
from handler.order_state_dynamodb import DynamoDBOrderStates
from local.aws import LocalAws, RelayResources
from mapping import CancelPlan, OrderLine
from tests.support.fakes_order_state import InMemoryOrderStates
from tests.support.order_state_data import DIGEST, ITEMS, T0, Clock, delivered

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["dynamodb", "in-memory"])
def store(request: pytest.FixtureRequest, clock: Clock) -> OrderStates:
    if request.param == "in-memory":
        return InMemoryOrderStates(clock=clock)
    local_aws: LocalAws = request.getfixturevalue("local_aws")
    resources: RelayResources = request.getfixturevalue("resources")
    return DynamoDBOrderStates(local_aws.client("dynamodb"), resources.table_name, clock=clock)


# Transitions (both implementations)


def test_an_order_never_seen_has_no_state(store: OrderStates) -> None:
    assert store.get("never-seen") is None
    assert store.confirmations_for("never-seen") == ()


def test_seeing_an_order_again_keeps_the_first_time(store: OrderStates, clock: Clock) -> None:
    # Given an order seen once
    store.mark_seen("1001")
    # When it is seen again later
    clock.now = T0 + timedelta(hours=1)
    state = store.mark_seen("1001")
    # Then the first time stays, and each write moved the version
    assert state.seen_at == T0
    assert state.version == 2
    assert store.get("1001") == state


def test_a_post_that_began_and_was_never_answered_is_in_doubt(store: OrderStates) -> None:
    # Given a post that began (the mark written before the post) and an invocation killed mid-post
    state = store.mark_post_began("1001", T0)
    assert state.post_began_at == T0
    assert state.post_in_doubt
    # When the post ends unanswered, it is still in doubt; once answered, it is not
    assert store.mark_answered("1001", False, T0 + timedelta(seconds=10)).post_in_doubt
    answered = store.mark_answered("1001", True, T0 + timedelta(seconds=20))
    assert not answered.post_in_doubt
    assert answered.last_post is not None
    assert answered.last_post.answered
    # And a new post that began after the answer is in doubt again
    assert store.mark_post_began("1001", T0 + timedelta(seconds=30)).post_in_doubt


def test_a_late_answer_cannot_overwrite_a_later_one(store: OrderStates) -> None:
    # Given a post answered at T0+20s
    store.mark_post_began("1001", T0)
    store.mark_answered("1001", True, T0 + timedelta(seconds=20))
    # When a slower invocation records an older post as unanswered
    with pytest.raises(StateChanged) as lost:
        store.mark_answered("1001", False, T0 + timedelta(seconds=5))
    # Then the later answer stays, and the loser is told what the store holds
    assert lost.value.current is not None
    assert lost.value.current.last_post is not None
    assert lost.value.current.last_post.answered
    state = store.get("1001")
    assert state is not None
    assert state.last_post is not None
    assert state.last_post.answered


def test_a_delivered_order_keeps_its_items_with_exact_decimals(store: OrderStates) -> None:
    # Given odd prices: trailing zeros, many places, tiny, large
    items = (
        ItemLine("A", Decimal("5.50"), 1),
        ItemLine("B", Decimal("0.1"), 3),
        ItemLine("C", Decimal("123456789.987654321"), 2),
        ItemLine("ü-sku", Decimal("0.00"), 1),
    )
    # When the order is delivered
    store.mark_delivered("1001", DIGEST, items, "EUR", T0)
    # Then every price reads back exactly as sent, spelling included
    state = store.get("1001")
    assert state is not None
    assert state.delivered is not None
    assert state.delivered.items == items
    assert [str(line.price) for line in state.delivered.items] == [
        "5.50",
        "0.1",
        "123456789.987654321",
        "0.00",
    ]
    assert (state.delivered.currency, state.delivered.body_digest, state.delivered.at) == ("EUR", DIGEST, T0)
    assert state.delivered.day == "2026-11-20"
    assert state.last_post is not None
    assert state.last_post.answered


def test_recording_the_same_delivery_again_is_not_an_error(store: OrderStates) -> None:
    first = delivered(store)
    again = store.mark_delivered("1001", DIGEST, ITEMS, "USD", T0 + timedelta(minutes=5))
    assert again.delivered == first.delivered


def test_a_second_delivery_with_another_body_is_refused(store: OrderStates) -> None:
    delivered(store)
    with pytest.raises(StateChanged) as lost:
        store.mark_delivered("1001", "b" * 64, ITEMS, "USD", T0 + timedelta(minutes=5))
    assert lost.value.current is not None
    assert lost.value.current.delivered is not None
    assert lost.value.current.delivered.body_digest == DIGEST


def test_no_post_can_begin_for_a_delivered_order(store: OrderStates) -> None:
    delivered(store)
    with pytest.raises(StateChanged):
        store.mark_post_began("1001", T0 + timedelta(minutes=1))
    state = store.get("1001")
    assert state is not None
    assert state.post_began_at == T0


def test_two_refunds_against_the_same_snapshot_cannot_both_apply(store: OrderStates) -> None:
    # Given a delivered order read by two invocations
    snapshot = delivered(store)
    # When both record a cancel of the last two PROD_A against that snapshot
    take_two = [ItemLine("PROD_A", Decimal("5.5"), 2)]
    won = store.record_cancel(snapshot, {"msg-1"}, take_two)
    with pytest.raises(StateChanged) as lost:
        store.record_cancel(snapshot, {"msg-2"}, take_two)
    # Then one wins, the other sees the winner's state, and nothing is cancelled twice
    assert won.version == snapshot.version + 1
    assert lost.value.current == won
    state = store.get("1001")
    assert state is not None
    assert state.cancelled == (ItemLine("PROD_A", Decimal("5.50"), 2),)
    assert state.refund_keys == {"msg-1"}
    assert state.remaining() == (ItemLine("PROD_B", Decimal("19.999"), 1),)


def test_cancels_add_up_by_sku_and_price(store: OrderStates) -> None:
    state = delivered(store)
    state = store.record_cancel(state, {"msg-1"}, [ItemLine("PROD_A", Decimal("5.50"), 1)])
    state = store.record_cancel(state, {"order#r2", "msg-2"}, [ItemLine("PROD_A", Decimal("5.5"), 1)])
    assert state.cancelled == (ItemLine("PROD_A", Decimal("5.50"), 2),)
    assert state.refund_keys == {"msg-1", "msg-2", "order#r2"}
    assert state.remaining() == (ItemLine("PROD_B", Decimal("19.999"), 1),)


def test_a_refund_of_an_order_never_seen_can_be_recorded_once(store: OrderStates) -> None:
    # Given no state for the order (a refund sent as given after the wait)
    unseen = OrderState("2002")
    # When two invocations record it against "no record"
    state = store.record_cancel(unseen, {"msg-9"}, [ItemLine("X", Decimal("1.00"), 1)])
    with pytest.raises(StateChanged):
        store.record_cancel(unseen, {"msg-9"}, [ItemLine("X", Decimal("1.00"), 1)])
    # Then it is recorded once, and the order is still neither seen nor delivered
    assert state.cancelled == (ItemLine("X", Decimal("1.00"), 1),)
    assert state.seen_at is None
    assert state.delivered is None


def _plan(
    *calls: tuple[tuple[str, str, int], ...], keys: tuple[str, ...] = ("msg-1", "1001#r1")
) -> CancelPlan:
    lines = tuple(
        tuple(OrderLine(sku=sku, price=Decimal(price), quantity=n) for sku, price, n in c) for c in calls
    )
    return CancelPlan(order_id="1001", calls=lines, keys=keys)


TWO_CALLS = _plan((("PROD_A", "5.50", 1),), (("PROD_B", "19.999", 1),))


def test_a_stored_cancel_plan_is_worked_through_one_call_at_a_time(store: OrderStates) -> None:
    # Given a delivered order and a plan of two calls for one refund
    state = delivered(store)
    state = store.store_cancel_plan(state, TWO_CALLS)
    assert state.cancel_plan == TWO_CALLS
    assert state.cancel_next_call == 0
    # When the first call is done, the second is next and the keys are not applied yet
    state = store.advance_cancel_plan(state)
    assert state.cancel_plan == TWO_CALLS
    assert state.cancel_next_call == 1
    assert state.refund_keys == frozenset()
    assert state.cancelled == (ItemLine("PROD_A", Decimal("5.50"), 1),)
    # When the last call is done, the plan is gone and the refund's keys are applied
    state = store.advance_cancel_plan(state)
    assert state.cancel_plan is None
    assert state.refund_keys == {"msg-1", "1001#r1"}
    assert state.remaining() == (ItemLine("PROD_A", Decimal("5.50"), 1),)
    assert store.get("1001") == state


def test_a_cancel_plan_cannot_be_stored_twice_or_advanced_from_a_stale_read(store: OrderStates) -> None:
    state = delivered(store)
    plan = _plan((("PROD_A", "5.50", 1),), (("PROD_A", "5.50", 1),), keys=("msg-1",))
    stored = store.store_cancel_plan(state, plan)
    with pytest.raises(StateChanged):
        store.store_cancel_plan(stored, plan)  # a plan is already there
    store.advance_cancel_plan(stored)
    with pytest.raises(StateChanged):
        store.advance_cancel_plan(stored)  # another invocation already made that call
    now = store.get("1001")
    assert now is not None
    assert now.cancel_plan == plan
    assert now.cancel_next_call == 1


def test_a_cancel_call_that_began_is_remembered_until_answered(store: OrderStates) -> None:
    # Given a delivered order and a refund whose first call is about to be made
    state = delivered(store)
    began = store.mark_cancel_began(state, TWO_CALLS, T0 + timedelta(minutes=1))
    # Then the plan is stored with the mark, before anything is sent
    assert (began.cancel_plan, began.cancel_next_call) == (TWO_CALLS, 0)
    assert began.cancel_began_at == T0 + timedelta(minutes=1)
    assert store.get("1001") == began
    # When that call is answered without success, the mark goes and the plan stays
    cleared = store.clear_cancel_began(began)
    assert cleared.cancel_began_at is None
    assert cleared.cancel_plan == TWO_CALLS
    # When it begins again and succeeds, the next call is due and no mark is left
    again = store.mark_cancel_began(cleared, TWO_CALLS, T0 + timedelta(minutes=2))
    advanced = store.advance_cancel_plan(again)
    assert (advanced.cancel_next_call, advanced.cancel_began_at) == (1, None)


def test_a_cancel_of_another_refund_cannot_begin_while_a_plan_is_stored(store: OrderStates) -> None:
    # Given a plan stored for one refund
    state = store.mark_cancel_began(delivered(store), TWO_CALLS, T0)
    other = _plan((("PROD_A", "5.50", 2),), keys=("msg-2",))
    # When another refund tries to begin its own call on the current state
    with pytest.raises(StateChanged):
        store.mark_cancel_began(state, other, T0)
    # Then the first plan is untouched; once dropped, the other refund can begin
    dropped = store.drop_cancel_plan(state)
    assert dropped.cancel_plan is None
    assert dropped.cancel_began_at is None
    assert store.mark_cancel_began(dropped, other, T0).cancel_plan == other


def test_a_confirmation_is_stored_once_and_found_by_its_order(store: OrderStates) -> None:
    # Given a delivered order
    before = delivered(store)
    first = Confirmation("conv-1", "1001", "PENDING", "aff-7", T0 + timedelta(minutes=1))
    # When Refersion announces the conversion twice, and a second conversion later
    assert store.put_confirmation(first) is True
    assert store.put_confirmation(Confirmation("conv-1", "1001", "APPROVED", None, T0)) is False
    second = Confirmation("conv-2", "1001", "PENDING", None, T0 + timedelta(minutes=2))
    assert store.put_confirmation(second) is True
    # Then both conversions are found by order id, each as first received
    assert store.confirmations_for("1001") == (first, second)
    # And linking them moved no version a refund decided on
    state = store.get("1001")
    assert state is not None
    assert state.version == before.version
    assert state.confirmations == {"conv-1", "conv-2"}


def test_a_confirmation_of_an_order_the_relay_never_saw_is_kept(store: OrderStates) -> None:
    store.put_confirmation(Confirmation("conv-9", "pixel-order", "PENDING", None, T0))
    state = store.get("pixel-order")
    assert state is not None
    assert state.seen_at is None
    assert state.delivered is None
    assert state.confirmations == frozenset({"conv-9"})
    assert [c.conversion_id for c in store.confirmations_for("pixel-order")] == ["conv-9"]
