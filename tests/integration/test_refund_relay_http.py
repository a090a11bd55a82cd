"""Refunds over real HTTP (CONTRACT §9): the refund path against the sandbox's cancel endpoint, with the order
state on the idempotency table of a moto server. H9a wires the refund path into the relay; these tests
build it with `build_refund_relay` the same way, on a fixed clock so that waits can be crossed.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import urllib3

from handler.config import Settings
from handler.credentials import SecretsManagerKeyPairs
from handler.observability import report_outcome
from handler.order_state import ItemLine, OrderState
from handler.order_state_dynamodb import DynamoDBOrderStates
from handler.outcomes import Outcome, RecordResult
from handler.refunds import (
    REFUND_SKIPPED_NO_CONVERSION,
    REFUND_UNANSWERED_RESENT,
    RefundRelay,
    build_refund_relay,
)
from handler.triggers import InboundRecord
from local.aws import put_key_pair
from local.sandbox import Reply
from tests.support.keys import PUBLIC_KEY, SECRET_KEY
from tests.support.order_state_data import T0, Clock
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration

ORDER_ID = "20150401102883"
ITEMS = (ItemLine("PROD_A", Decimal("5.50"), 2), ItemLine("PROD_B", Decimal("19.99"), 1))


@dataclass
class Refunds:
    env: RelayEnv
    clock: Clock
    states: DynamoDBOrderStates
    relay: RefundRelay

    def deliver(self, order_id: str = ORDER_ID, items: Sequence[ItemLine] = ITEMS) -> OrderState:
        """The order credited at the sandbox and remembered as delivered, as the order side leaves it."""
        body = {
            "cart_id": "cart-1",
            "order_id": order_id,
            "currency_code": "USD",
            "items": [{"sku": i.sku, "price": float(i.price), "quantity": i.quantity} for i in items],
        }
        raw = json.dumps(body).encode()
        headers = {
            "Refersion-Public-Key": PUBLIC_KEY,
            "Refersion-Secret-Key": SECRET_KEY,
            "Content-Type": "application/json",
        }
        assert urllib3.request("POST", self.env.sandbox.url, body=raw, headers=headers).status == 200
        self.states.mark_seen(order_id)
        return self.states.mark_delivered(
            order_id, hashlib.sha256(raw).hexdigest(), items, "USD", self.clock.now
        )

    def refund(self, event: dict[str, Any], *, sent_at_offset: timedelta = timedelta(0)) -> RecordResult:
        inbound = InboundRecord("rec-1", json.dumps(event), sent_at=T0 + sent_at_offset)
        return self.relay.relay(inbound, event, deadline=time.monotonic() + 20)

    def net(self, order_id: str = ORDER_ID) -> dict[str, int]:
        return self.env.sandbox.net_quantities().get(order_id, {})


def refund_event(
    order_id: str = ORDER_ID, *, message_id: str = "msg-1", products: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    properties: dict[str, Any] = {"order_id": order_id}
    if products is not None:
        properties["products"] = products
    return {"type": "track", "event": "Order Refunded", "messageId": message_id, "properties": properties}


@pytest.fixture
def refunds(relay_env: RelayEnv) -> Refunds:
    clock = Clock()
    states = DynamoDBOrderStates(
        relay_env.aws.client("dynamodb"), relay_env.resources.table_name, clock=clock
    )
    settings = Settings.model_validate(
        {
            "REFERSION_SECRET_ID": relay_env.resources.secret_id,
            "DEAD_LETTER_QUEUE_URL": relay_env.resources.dlq_url,
            "REFERSION_API_URL": relay_env.sandbox.api_url,
            "REFERSION_TIMEOUT_SECONDS": "1",
        }
    )
    keys = SecretsManagerKeyPairs(relay_env.aws.client("secretsmanager"), settings.secret_id, 300)
    return Refunds(relay_env, clock, states, build_refund_relay(settings, keys, states, clock=clock))


def test_a_full_refund_takes_back_every_item_at_refersion(refunds: Refunds, relay_logs: io.StringIO) -> None:
    # Given an order credited at Refersion and delivered by the relay
    refunds.deliver()
    # When its full refund is relayed
    result = refunds.refund(refund_event())
    report_outcome(result)
    # Then Refersion's net quantities are zero, and the outcome line says refund, the order and the body
    assert result.outcome is Outcome.DELIVERED
    assert refunds.net() == {"PROD_A": 0, "PROD_B": 0}
    lines = [json.loads(text) for text in relay_logs.getvalue().splitlines() if text.strip()]
    line = next(entry for entry in lines if entry.get("kind") == "refund")
    assert (line["outcome"], line["order_id"], line["http_status"]) == ("delivered", ORDER_ID, 200)
    assert line["body"]["items"][0] == {"sku": "PROD_A", "price": 5.5, "quantity": 2}


def test_a_partial_refund_takes_back_only_the_listed_items(refunds: Refunds) -> None:
    refunds.deliver()
    result = refunds.refund(refund_event(products=[{"sku": "PROD_A", "quantity": 1}]))
    assert result.outcome is Outcome.DELIVERED
    assert refunds.net() == {"PROD_A": 1, "PROD_B": 1}


def test_a_refund_delivered_twice_is_applied_once(refunds: Refunds) -> None:
    refunds.deliver()
    one = [{"sku": "PROD_A", "quantity": 1}]
    first = refunds.refund(refund_event(products=one))
    again = refunds.refund(refund_event(products=one))
    assert (first.outcome, again.outcome) == (Outcome.DELIVERED, Outcome.DUPLICATE)
    assert refunds.net() == {"PROD_A": 1, "PROD_B": 1}
    assert len(refunds.env.sandbox.cancels()) == 1


def test_a_refund_that_overtakes_its_order_waits_and_is_applied_once_the_order_is_delivered(
    refunds: Refunds,
) -> None:
    # Given an order the relay has seen but not delivered yet
    refunds.states.mark_seen(ORDER_ID)
    # When its refund comes first: waiting, nothing sent
    assert refunds.refund(refund_event()).outcome is Outcome.WAITING
    assert refunds.env.sandbox.received() == []
    # When the order is then delivered and the refund comes back: applied
    refunds.deliver()
    assert refunds.refund(refund_event()).outcome is Outcome.DELIVERED
    assert refunds.net() == {"PROD_A": 0, "PROD_B": 0}


def test_a_full_refund_of_an_order_never_seen_is_skipped_after_the_wait(refunds: Refunds) -> None:
    refunds.clock.now = T0 + timedelta(minutes=30)
    assert refunds.refund(refund_event("never-seen")).outcome is Outcome.WAITING
    refunds.clock.now = T0 + timedelta(minutes=61)
    skipped = refunds.refund(refund_event("never-seen"))
    assert skipped.outcome is Outcome.SKIPPED
    assert "nothing known to cancel" in skipped.reason
    assert refunds.env.sandbox.received() == []


def test_invalid_order_id_waits_within_the_wait_after_delivery_then_is_skipped_and_counted(
    refunds: Refunds,
) -> None:
    # Given an order the relay delivered, and Refersion with no conversion for it for an hour
    refunds.env.sandbox.set_processing_delay(3600)
    refunds.deliver()
    # When the refund comes 30 minutes after delivery: 422, waiting
    refunds.clock.now = T0 + timedelta(minutes=30)
    waiting = refunds.refund(refund_event())
    assert (waiting.outcome, waiting.http_status) == (Outcome.WAITING, 422)
    # When it comes back after REFUND_WAIT_MINUTES: skipped with the reason, counted apart
    refunds.clock.now = T0 + timedelta(minutes=61)
    skipped = refunds.refund(refund_event())
    assert skipped.outcome is Outcome.SKIPPED
    assert "Invalid order ID" in skipped.reason
    assert skipped.extra_metrics == (REFUND_SKIPPED_NO_CONVERSION,)
    assert refunds.net() == {"PROD_A": 2, "PROD_B": 1}


def test_a_refund_of_more_than_fifty_lines_is_applied_over_three_attempts(refunds: Refunds) -> None:
    # Given an order of 120 lines credited at Refersion
    items = tuple(ItemLine(f"SKU-{n:03}", Decimal("1.25"), 1) for n in range(120))
    refunds.deliver(items=items)
    # When its full refund is attempted until done
    outcomes = [refunds.refund(refund_event()).outcome for _ in range(3)]
    # Then three calls of at most 50 items, and everything is taken back exactly once
    assert outcomes == [Outcome.WAITING, Outcome.WAITING, Outcome.DELIVERED]
    assert [len(r.json()["items"]) for r in refunds.env.sandbox.cancels()] == [50, 50, 20]
    assert set(refunds.net().values()) == {0}


def test_an_unanswered_cancel_is_sent_again_and_counted(refunds: Refunds) -> None:
    # Given a delivered order, and Refersion applying the cancel but the answer never arriving
    refunds.deliver()
    refunds.env.sandbox.script(Reply(drop="after"))
    first = refunds.refund(refund_event())
    assert (first.outcome, first.maybe_received) == (Outcome.RETRY, True)
    # When the record comes back once the call cannot be in flight any more
    refunds.clock.now = T0 + timedelta(minutes=5)
    again = refunds.refund(refund_event())
    # Then the cancel was sent again and counted: Refersion subtracted it twice (CONTRACT §9's known risk)
    assert again.outcome is Outcome.DELIVERED
    assert again.extra_metrics == (REFUND_UNANSWERED_RESENT,)
    assert len(refunds.env.sandbox.cancels()) == 2
    assert refunds.net() == {"PROD_A": -2, "PROD_B": -1}


def test_keys_rotated_in_secrets_manager_are_read_again_for_a_cancel(refunds: Refunds) -> None:
    # Given a cached key pair that Refersion no longer accepts, and the new one in Secrets Manager
    refunds.deliver()
    first = refunds.refund(refund_event(products=[{"sku": "PROD_A", "quantity": 1}]))
    assert first.attempts == 1  # and the pair is cached now
    put_key_pair(refunds.env.aws, refunds.env.resources.secret_id, "pub_rotated", "sec_rotated")
    refunds.env.sandbox.set_keys("pub_rotated", "sec_rotated")
    # When a refund is relayed
    result = refunds.refund(refund_event(message_id="msg-2", products=[{"sku": "PROD_B", "quantity": 1}]))
    # Then the first call got 401, the pair was read again, and the second call applied the cancel
    assert result.outcome is Outcome.DELIVERED
    assert result.attempts == 2
    assert [r.status for r in refunds.env.sandbox.received()][-2:] == [401, 200]
