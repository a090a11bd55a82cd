"""SPEC §11 order state: each transition, conditional conflicts, keys, TTL, exact decimals, write retries.

The transition tests run against the DynamoDB store (moto server over HTTP) and the in-memory fake
alike, so that the fake the relay's unit tests use cannot drift from the real store.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config

from handler.delivery import Delivery
from handler.idempotency import KEY_PREFIX, DynamoDBOrderLedger
from handler.order_state import (
    CancelPlan,
    Confirmation,
    ItemLine,
    OrderState,
    OrderStates,
    StateChanged,
    StateUnavailable,
)
from handler.order_state_dynamodb import DynamoDBOrderStates
from handler.outcomes import Outcome
from local.aws import REGION, LocalAws, RelayResources
from local.lambda_shapes import FakeLambdaContext
from tests.support.dynamodb_fault_proxy import DynamoDBFaultProxy
from tests.support.fakes_order_state import InMemoryOrderStates

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
DIGEST = "a" * 64
ITEMS = (ItemLine("PROD_A", Decimal("5.50"), 2), ItemLine("PROD_B", Decimal("19.999"), 1))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


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


def delivered(store: OrderStates, order_id: str = "1001") -> OrderState:
    store.mark_seen(order_id)
    store.mark_post_began(order_id, T0)
    return store.mark_delivered(order_id, DIGEST, ITEMS, "USD", T0 + timedelta(seconds=1))


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


def test_a_stored_cancel_plan_is_worked_through_one_call_at_a_time(store: OrderStates) -> None:
    # Given a delivered order and a plan of two calls for one refund
    state = delivered(store)
    calls = ((ItemLine("PROD_A", Decimal("5.50"), 1),), (ItemLine("PROD_B", Decimal("19.999"), 1),))
    state = store.store_cancel_plan(state, CancelPlan(frozenset({"msg-1", "1001#r1"}), calls))
    assert state.cancel_plan is not None
    assert state.cancel_plan.next_items == calls[0]
    # When the first call is done, the second is next and the keys are not applied yet
    state = store.advance_cancel_plan(state)
    assert state.cancel_plan is not None
    assert state.cancel_plan.next_call == 1
    assert state.refund_keys == frozenset()
    assert state.cancelled == calls[0]
    # When the last call is done, the plan is gone and the refund's keys are applied
    state = store.advance_cancel_plan(state)
    assert state.cancel_plan is None
    assert state.refund_keys == {"msg-1", "1001#r1"}
    assert state.remaining() == (ItemLine("PROD_A", Decimal("5.50"), 1),)
    assert store.get("1001") == state


def test_a_cancel_plan_cannot_be_stored_twice_or_advanced_from_a_stale_read(store: OrderStates) -> None:
    state = delivered(store)
    plan = CancelPlan(frozenset({"msg-1"}), ((ItemLine("PROD_A", Decimal("5.50"), 1),),) * 2)
    stored = store.store_cancel_plan(state, plan)
    with pytest.raises(StateChanged):
        store.store_cancel_plan(stored, plan)  # a plan is already there
    store.advance_cancel_plan(stored)
    with pytest.raises(StateChanged):
        store.advance_cancel_plan(stored)  # another invocation already made that call
    now = store.get("1001")
    assert now is not None
    assert now.cancel_plan is not None
    assert now.cancel_plan.next_call == 1


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


# DynamoDB only: keys, TTL, and the write-retry helper against real HTTP faults


@pytest.fixture
def dynamodb(local_aws: LocalAws) -> Any:
    return local_aws.client("dynamodb")


def raw_item(dynamodb: Any, table: str, key: str) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(TableName=table, Key={"id": {"S": key}})["Item"]
    return item


def test_every_record_expires_order_record_days_after_its_last_write(
    dynamodb: Any, resources: RelayResources, clock: Clock
) -> None:
    # Given a store keeping records 30 days
    store = DynamoDBOrderStates(dynamodb, resources.table_name, record_days=30, clock=clock)
    store.mark_seen("1001")
    store.put_confirmation(Confirmation("conv-1", "1001", "PENDING", None, T0))
    # Then both items carry the TTL attribute: the last write + 30 days, in epoch seconds
    expected = int(T0.timestamp()) + 30 * 86400
    assert raw_item(dynamodb, resources.table_name, "confirmation#conv-1")["expiration"] == {
        "N": str(expected)
    }
    # And a later write pushes the order's expiry on
    clock.now = T0 + timedelta(days=1)
    store.mark_post_began("1001", clock.now)
    item = raw_item(dynamodb, resources.table_name, "order-state#1001")
    assert item["expiration"] == {"N": str(expected + 86400)}


def test_the_order_state_never_collides_with_the_powertools_record(
    dynamodb: Any, resources: RelayResources
) -> None:
    # Given an order delivered through the Powertools ledger and recorded in the order state
    ledger = DynamoDBOrderLedger(dynamodb, resources.table_name)
    ledger.register_context(FakeLambdaContext())  # type: ignore[arg-type]
    first = ledger.deliver_once("1001", b"{}", lambda: Delivery(Outcome.DELIVERED))
    store = DynamoDBOrderStates(dynamodb, resources.table_name)
    delivered(store)
    store.put_confirmation(Confirmation("1001", "1001", "PENDING", None, T0))
    # Then three items live side by side under distinct keys
    ids = sorted(item["id"]["S"] for item in dynamodb.scan(TableName=resources.table_name)["Items"])
    assert len(ids) == 3
    assert ids[0] == "confirmation#1001"
    assert ids[1] == "order-state#1001"
    assert ids[2].startswith(f"{KEY_PREFIX}#")
    # And the ledger still knows the order was delivered
    assert first.outcome is Outcome.DELIVERED
    assert (
        ledger.deliver_once("1001", b"{}", lambda: Delivery(Outcome.DELIVERED)).outcome is Outcome.DUPLICATE
    )
    # And the delivery time is there for a GSI by day
    item = raw_item(dynamodb, resources.table_name, "order-state#1001")
    assert item["delivered_day"] == {"S": "2026-11-20"}
    assert item["delivered_at"] == {"S": "2026-11-20T10:00:01.123456Z"}


@pytest.mark.parametrize(
    "order_id",
    [
        "9" * 2000,  # longer than a partition key may be raw
        "€" * 400,  # 1200 UTF-8 bytes
        "order \ud800 lone surrogate",  # not valid UTF-8 at all
        "with#hash and spaces",
        "x",
    ],
)
def test_any_order_id_is_a_valid_key(dynamodb: Any, resources: RelayResources, order_id: str) -> None:
    store = DynamoDBOrderStates(dynamodb, resources.table_name)
    store.mark_seen(order_id)
    store.mark_delivered(order_id, DIGEST, ITEMS, "USD", T0)
    state = store.get(order_id)
    assert state is not None
    assert state.order_id == order_id
    assert state.delivered is not None
    # A long id that differs only at its end is another order
    assert store.get(order_id[:-1] + "#") is None


def test_ids_past_the_raw_limit_are_hashed_under_their_own_prefix(
    dynamodb: Any, resources: RelayResources
) -> None:
    store = DynamoDBOrderStates(dynamodb, resources.table_name)
    store.mark_seen("9" * 1025)
    store.mark_seen("9" * 1024)
    ids = sorted(item["id"]["S"] for item in dynamodb.scan(TableName=resources.table_name)["Items"])
    assert ids[0] == "order-state#" + "9" * 1024
    assert ids[1].startswith("order-state-sha256#")
    assert len(ids[1]) == len("order-state-sha256#") + 64


@pytest.fixture
def proxy(local_aws: LocalAws) -> Iterator[DynamoDBFaultProxy]:
    with DynamoDBFaultProxy(local_aws.endpoint_url) as running:
        yield running


def proxied_store(proxy: DynamoDBFaultProxy, resources: RelayResources) -> DynamoDBOrderStates:
    # botocore's own retries off, so that every retry seen is the store's
    client = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=proxy.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    return DynamoDBOrderStates(client, resources.table_name)


def test_a_throttled_write_after_a_post_is_retried_until_it_lands(
    proxy: DynamoDBFaultProxy, resources: RelayResources
) -> None:
    # Given DynamoDB throttling the next three calls
    store = proxied_store(proxy, resources)
    proxy.throttle_next(3)
    # When the delivery is recorded with a few seconds of budget
    state = store.mark_delivered("1001", DIGEST, ITEMS, "USD", T0, deadline=time.monotonic() + 10)
    # Then it landed on the fourth attempt
    assert proxy.failed == ["DynamoDB_20120810.UpdateItem"] * 3
    assert proxy.operations == ["DynamoDB_20120810.UpdateItem"] * 4
    assert state.delivered is not None
    assert store.get("1001") == state


def test_a_write_still_throttled_at_its_deadline_says_the_state_is_unavailable(
    proxy: DynamoDBFaultProxy, resources: RelayResources
) -> None:
    store = proxied_store(proxy, resources)
    proxy.throttle_next(10_000)
    started = time.monotonic()
    with pytest.raises(StateUnavailable) as unavailable:
        store.mark_post_began("1001", T0, deadline=started + 0.5)
    assert unavailable.value.cause == "ThrottlingException"
    assert time.monotonic() - started < 1.5
    assert len(proxy.operations) > 1


def test_without_a_deadline_a_throttled_call_is_tried_once(
    proxy: DynamoDBFaultProxy, resources: RelayResources
) -> None:
    store = proxied_store(proxy, resources)
    proxy.throttle_next(1)
    with pytest.raises(StateUnavailable):
        store.get("1001")
    assert len(proxy.operations) == 1


def test_a_lost_condition_is_never_retried(proxy: DynamoDBFaultProxy, resources: RelayResources) -> None:
    store = proxied_store(proxy, resources)
    snapshot = delivered(store)
    store.record_cancel(snapshot, {"msg-1"}, [ITEMS[0]])
    calls_before = len(proxy.operations)
    with pytest.raises(StateChanged):
        store.record_cancel(snapshot, {"msg-2"}, [ITEMS[0]], deadline=time.monotonic() + 10)
    assert len(proxy.operations) == calls_before + 1


def test_a_write_whose_answer_was_lost_is_recognised_as_applied_on_retry(
    proxy: DynamoDBFaultProxy, resources: RelayResources
) -> None:
    # Given a delivered order, and DynamoDB applying the next write but its answer lost
    store = proxied_store(proxy, resources)
    snapshot = delivered(store)
    proxy.lose_answers_next(1)
    # When the cancel is recorded with a budget: the retry meets its own write's condition
    state = store.record_cancel(snapshot, {"msg-1"}, [ITEMS[0]], deadline=time.monotonic() + 10)
    # Then it counts as applied (not as another invocation's change), once
    assert proxy.failed == ["DynamoDB_20120810.UpdateItem"]
    assert state.refund_keys == {"msg-1"}
    assert state.cancelled == (ITEMS[0],)
    assert state.version == snapshot.version + 1


def test_a_delivery_whose_answer_was_lost_is_recognised_on_retry(
    proxy: DynamoDBFaultProxy, resources: RelayResources
) -> None:
    store = proxied_store(proxy, resources)
    proxy.lose_answers_next(1)
    state = store.mark_delivered("1001", DIGEST, ITEMS, "USD", T0, deadline=time.monotonic() + 10)
    assert proxy.failed == ["DynamoDB_20120810.UpdateItem"]
    assert state.delivered is not None
    assert state.delivered.body_digest == DIGEST


def test_a_store_that_cannot_be_reached_is_unavailable_once_the_budget_is_spent(
    resources: RelayResources,
) -> None:
    # Given an endpoint nothing listens on (a port just released)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=0.5),
    )
    store = DynamoDBOrderStates(client, resources.table_name)
    # When a write is tried with half a second of budget
    started = time.monotonic()
    with pytest.raises(StateUnavailable) as unavailable:
        store.mark_seen("1001", deadline=started + 0.5)
    # Then it gave up near the deadline, naming the fault
    assert unavailable.value.cause == "EndpointConnectionError"
    assert time.monotonic() - started < 2.0
