"""CONTRACT §11 order state on DynamoDB itself: keys, TTL, and the write retries against real HTTP faults.

The transitions are tested on both stores in test_order_state.py; these need the real table or wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from handler.delivery import Delivery
from handler.idempotency import KEY_PREFIX, DynamoDBOrderLedger
from handler.order_state import Confirmation, StateChanged, StateUnavailable
from handler.order_state_dynamodb import DynamoDBOrderStates
from handler.outcomes import Outcome
from local.aws import REGION, LocalAws, RelayResources
from local.lambda_shapes import FakeLambdaContext
from tests.support.dynamodb_fault_proxy import DynamoDBFaultProxy
from tests.support.order_state_data import DIGEST, ITEMS, T0, Clock, delivered

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock()


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
