"""The refund path (handler.refunds, CONTRACT §9): each rule, on in-memory fakes and a scripted poster."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from handler.delivery import Deliverer
from handler.observability import metrics, outcome_fields, report_outcome
from handler.order_state import ItemLine, OrderState
from handler.outcomes import Outcome, RecordKind, RecordResult
from handler.refersion_client import HttpAnswer
from handler.refunds import (
    REFUND_SKIPPED_NO_CONVERSION,
    REFUND_UNANSWERED_RESENT,
    RefundRelay,
    cancel_url,
)
from handler.triggers import InboundRecord
from tests.support.fakes import ROTATED_KEYS, FakeKeyPairs, ScriptedPoster, answer, no_answer
from tests.support.fakes_order_state import InMemoryOrderStates
from tests.support.order_state_data import DIGEST, ITEMS, T0, Clock, delivered

WAIT = timedelta(minutes=60)
IN_FLIGHT_SECONDS = 34.0
NO_CONVERSION = '{"errors": ["Invalid order ID (error 5)"]}'


class Env:
    """A RefundRelay on fakes: the clock, the order states, the key pair and the cancel endpoint."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.states = InMemoryOrderStates(clock=self.clock)
        self.keys = FakeKeyPairs()
        self.poster = ScriptedPoster(answer(200, '{"conversion_id": "c-1"}'))
        self.relay = RefundRelay(
            Deliverer(self.keys, self.poster),
            self.states,
            wait=WAIT,
            in_flight_seconds=IN_FLIGHT_SECONDS,
            clock=self.clock,
        )

    def refund(self, event: dict[str, Any], *, sent_after: timedelta = timedelta(0)) -> RecordResult:
        inbound = InboundRecord(record_id="rec-1", raw_body=json.dumps(event), sent_at=T0 + sent_after)
        return self.relay.relay(inbound, event, deadline=1e12)

    def sent(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.poster.bodies]

    def state(self, order_id: str = "1001") -> OrderState:
        found = self.states.get(order_id)
        assert found is not None
        return found


def refund_event(
    order_id: str = "1001",
    *,
    message_id: str | None = "msg-1",
    products: list[dict[str, Any]] | None = None,
    refund_id: str | None = None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {"order_id": order_id}
    if products is not None:
        properties["products"] = products
    if refund_id is not None:
        properties["refund_id"] = refund_id
    event: dict[str, Any] = {"type": "track", "event": "Order Refunded", "properties": properties}
    if message_id is not None:
        event["messageId"] = message_id
    return event


@pytest.fixture
def env() -> Env:
    return Env()


# Delivered orders


def test_a_full_refund_cancels_every_delivered_item_at_its_delivered_price(env: Env) -> None:
    # Given a delivered order (2 x PROD_A at 5.50, 1 x PROD_B at 19.999)
    delivered(env.states)
    # When the whole order is refunded
    result = env.refund(refund_event())
    # Then one cancel call takes every item back at the delivered prices
    assert result.outcome is Outcome.DELIVERED
    assert result.kind is RecordKind.REFUND
    assert env.sent() == [
        {
            "order_id": "1001",
            "items": [
                {"sku": "PROD_A", "price": 5.5, "quantity": 2},
                {"sku": "PROD_B", "price": 19.999, "quantity": 1},
            ],
        }
    ]
    # And the order state knows it: nothing left, the refund's keys applied, no plan pending
    state = env.state()
    assert state.remaining() == ()
    assert state.cancel_plan is None
    assert len(state.refund_keys) == 2  # its messageId and its content
    # And the outcome line names the order and logs the cancel body (no personal data in it)
    assert result.order_id == "1001"
    assert result.body_logged == {"order_id": "1001", "items": env.sent()[0]["items"]}


def test_a_partial_refund_cancels_only_the_listed_quantities(env: Env) -> None:
    delivered(env.states)
    result = env.refund(refund_event(products=[{"sku": "PROD_A", "quantity": 1}]))
    assert result.outcome is Outcome.DELIVERED
    assert env.sent()[0]["items"] == [{"sku": "PROD_A", "price": 5.5, "quantity": 1}]
    assert env.state().remaining() == (ItemLine("PROD_A", Decimal("5.50"), 1), ITEMS[1])


def test_a_refund_applied_before_is_a_duplicate_by_message_id_or_refund_id(env: Env) -> None:
    # Given a partial refund applied with a messageId and a refund_id
    delivered(env.states)
    one = [{"sku": "PROD_A", "quantity": 1}]
    assert env.refund(refund_event(products=one, refund_id="r-1")).outcome is Outcome.DELIVERED
    # When the same message comes again, or another message for the same refund id
    again = env.refund(refund_event(products=one, refund_id="r-1"))
    same_refund = env.refund(refund_event(message_id="msg-2", products=one, refund_id="r-1"))
    # Then both are duplicates and nothing more is sent
    assert (again.outcome, same_refund.outcome) == (Outcome.DUPLICATE, Outcome.DUPLICATE)
    assert "messageId" in again.reason
    assert "refund_id" in same_refund.reason
    assert len(env.poster.posts) == 1


def test_a_full_refund_of_an_order_with_nothing_left_is_a_duplicate(env: Env) -> None:
    delivered(env.states)
    env.refund(refund_event(message_id="msg-1"))
    result = env.refund(refund_event(message_id="msg-2"))
    assert result.outcome is Outcome.DUPLICATE
    assert "nothing left" in result.reason
    assert len(env.poster.posts) == 1


def test_a_refund_the_order_cannot_satisfy_is_invalid_with_the_reason_and_never_sent(env: Env) -> None:
    delivered(env.states)
    result = env.refund(refund_event(products=[{"sku": "NOT_SOLD", "quantity": 1}]))
    assert result.outcome is Outcome.INVALID
    assert "NOT_SOLD" in result.reason
    assert "was not delivered" in result.reason
    assert env.poster.posts == []


def test_a_refund_without_an_order_id_is_invalid(env: Env) -> None:
    result = env.refund({"type": "track", "event": "Order Refunded", "properties": {}})
    assert result.outcome is Outcome.INVALID
    assert "order_id" in result.reason
    assert result.kind is RecordKind.REFUND


# Refunds that overtake their order


def test_a_refund_of_an_order_seen_but_not_delivered_waits_however_long_it_takes(env: Env) -> None:
    # Given an order the relay has seen, whose post has not succeeded
    env.states.mark_seen("1001")
    # When its refund comes, now and ten days later
    first = env.refund(refund_event())
    env.clock.now = T0 + timedelta(days=10)
    later = env.refund(refund_event())
    # Then it waits both times, nothing is sent
    assert (first.outcome, later.outcome) == (Outcome.WAITING, Outcome.WAITING)
    assert "not delivered yet" in later.reason
    assert env.poster.posts == []
    # And once the order is delivered, the refund is applied
    env.states.mark_delivered("1001", DIGEST, ITEMS, "USD", env.clock.now)
    assert env.refund(refund_event()).outcome is Outcome.DELIVERED


def test_a_full_refund_of_an_order_never_seen_waits_then_is_skipped(env: Env) -> None:
    # Within REFUND_WAIT_MINUTES of the refund being sent: waiting
    env.clock.now = T0 + timedelta(minutes=59)
    assert env.refund(refund_event()).outcome is Outcome.WAITING
    # After it: skipped, with the reason, nothing sent
    env.clock.now = T0 + timedelta(minutes=61)
    skipped = env.refund(refund_event())
    assert skipped.outcome is Outcome.SKIPPED
    assert "nothing known to cancel" in skipped.reason
    assert env.poster.posts == []


def test_a_refund_with_products_of_an_order_never_seen_is_sent_as_given_after_the_wait(env: Env) -> None:
    env.clock.now = T0 + timedelta(minutes=61)
    products = [{"sku": "X", "price": "7.25", "quantity": 2}]
    result = env.refund(refund_event("2002", products=products))
    assert result.outcome is Outcome.DELIVERED
    assert env.sent() == [{"order_id": "2002", "items": [{"sku": "X", "price": 7.25, "quantity": 2}]}]
    # And it is remembered: the same message again is a duplicate
    assert env.refund(refund_event("2002", products=products)).outcome is Outcome.DUPLICATE


# Plans over 50 items


def test_a_refund_of_more_than_fifty_lines_makes_one_call_per_attempt_until_done(env: Env) -> None:
    # Given an order delivered with 120 different lines
    items = tuple(ItemLine(f"SKU-{n:03}", Decimal("1.10"), 1) for n in range(120))
    env.states.mark_delivered("1001", DIGEST, items, "USD", T0)
    # When its full refund is attempted three times
    results = [env.refund(refund_event()) for _ in range(3)]
    # Then each attempt made one call (50, 50, 20 lines), the first two came back as waiting
    assert [r.outcome for r in results] == [Outcome.WAITING, Outcome.WAITING, Outcome.DELIVERED]
    assert [len(body["items"]) for body in env.sent()] == [50, 50, 20]
    assert "call 1 of 3 done" in results[0].reason
    # And every line was cancelled exactly once; the refund is now a duplicate
    assert sorted(i["sku"] for body in env.sent() for i in body["items"]) == [i.sku for i in items]
    assert env.state().remaining() == ()
    assert env.refund(refund_event()).outcome is Outcome.DUPLICATE
    assert len(env.poster.posts) == 3


# Refersion's answers


def test_invalid_order_id_waits_while_refersion_may_still_process_the_order_then_is_skipped(env: Env) -> None:
    # Given a delivered order Refersion says it has no conversion for
    delivered(env.states)
    env.poster.answer_with(answer(422, NO_CONVERSION))
    # When the refund is tried within the wait after the delivery: waiting, and the plan stays
    env.clock.now = T0 + timedelta(minutes=30)
    waiting = env.refund(refund_event())
    assert waiting.outcome is Outcome.WAITING
    assert "422 Invalid order ID" in waiting.reason
    assert env.state().cancel_plan is not None
    assert env.state().cancel_began_at is None
    # When it is tried after the wait: skipped with the reason, counted apart, the plan dropped
    env.clock.now = T0 + timedelta(minutes=62)
    skipped = env.refund(refund_event())
    assert skipped.outcome is Outcome.SKIPPED
    assert "no conversion to cancel" in skipped.reason
    assert skipped.extra_metrics == (REFUND_SKIPPED_NO_CONVERSION,)
    assert env.state().cancel_plan is None
    assert env.state().remaining() == ITEMS


def test_refused_keys_are_read_again_once_and_the_cancel_retried(env: Env) -> None:
    delivered(env.states)
    env.keys.rotate()
    env.poster.answer_with(answer(401, '{"error": "Invalid API credentials (error 2)."}'), answer(200))
    result = env.refund(refund_event())
    assert result.outcome is Outcome.DELIVERED
    assert result.attempts == 2
    assert env.poster.posts[-1][1] == ROTATED_KEYS
    assert env.keys.refreshes == 1


def test_a_server_error_comes_back_and_the_next_attempt_is_not_a_resend(env: Env) -> None:
    delivered(env.states)
    env.poster.answer_with(answer(503), answer(200))
    first = env.refund(refund_event())
    assert first.outcome is Outcome.RETRY
    assert first.http_status == 503
    assert env.state().cancel_began_at is None
    second = env.refund(refund_event())
    assert second.outcome is Outcome.DELIVERED
    assert second.extra_metrics == ()


def test_another_client_error_is_rejected_and_the_plan_dropped(env: Env) -> None:
    delivered(env.states)
    env.poster.answer_with(answer(400, '{"error": "items[0].price is required"}'))
    result = env.refund(refund_event())
    assert result.outcome is Outcome.REJECTED
    assert "400" in result.reason
    assert env.state().cancel_plan is None


def test_an_unanswered_cancel_is_sent_again_only_once_it_cannot_be_in_flight_and_is_counted(env: Env) -> None:
    # Given a cancel call that went unanswered (bytes may have left)
    delivered(env.states)
    env.poster.answer_with(no_answer(), answer(200))
    first = env.refund(refund_event())
    assert first.outcome is Outcome.RETRY
    assert first.maybe_received
    assert env.state().cancel_began_at is not None  # the mark stays for the next attempt
    # When the next attempt comes while the call could still be in flight: waiting, nothing sent
    env.clock.now = T0 + timedelta(seconds=10)
    assert env.refund(refund_event()).outcome is Outcome.WAITING
    assert len(env.poster.posts) == 1
    # When it comes later: the same call is sent again, counted and delivered
    env.clock.now = T0 + timedelta(minutes=5)
    again = env.refund(refund_event())
    assert again.outcome is Outcome.DELIVERED
    assert again.extra_metrics == (REFUND_UNANSWERED_RESENT,)
    assert env.poster.bodies[0] == env.poster.bodies[1]
    assert outcome_fields(again)["counted_as"] == [REFUND_UNANSWERED_RESENT]


def test_a_cancel_that_could_not_connect_is_not_counted_as_resent(env: Env) -> None:
    delivered(env.states)
    env.poster.answer_with(no_answer("could not connect", maybe_received=False), answer(200))
    assert env.refund(refund_event()).outcome is Outcome.RETRY
    assert env.state().cancel_began_at is None
    assert env.refund(refund_event()).extra_metrics == ()


def test_a_cancel_applied_but_not_recorded_comes_back_and_is_counted_when_sent_again(env: Env) -> None:
    # Given an order state that fails right after Refersion applied the cancel
    delivered(env.states)
    states = env.states

    class FailingAfterPost(ScriptedPoster):
        def post(self, body: bytes, keys: Any) -> HttpAnswer:
            states.outage = 1
            return super().post(body, keys)

    env.poster.__class__ = FailingAfterPost
    first = env.refund(refund_event())
    # Then the record comes back saying what happened, and the mark is left
    assert first.outcome is Outcome.RETRY
    assert "order state was not updated" in first.reason
    # And the next attempt sends it again, counted as such
    env.poster.__class__ = ScriptedPoster
    env.clock.now = T0 + timedelta(minutes=5)
    assert env.refund(refund_event()).extra_metrics == (REFUND_UNANSWERED_RESENT,)


def test_the_order_state_unavailable_brings_the_refund_back_and_counts_a_dynamodb_error(env: Env) -> None:
    delivered(env.states)
    env.states.outage = 1
    metrics.clear_metrics()
    result = env.refund(refund_event())
    assert result.outcome is Outcome.RETRY
    assert "order state unavailable" in result.reason
    assert env.poster.posts == []
    # the operator's DynamoDB alarm sees it, as for orders
    assert len(metrics.metric_set["aws_dynamodb_error"]["Value"]) == 1
    metrics.clear_metrics()


# Concurrent refunds of one order


def test_a_refund_waits_while_another_refund_of_the_order_is_being_applied(env: Env) -> None:
    # Given a refund of more than 50 lines half done
    items = tuple(ItemLine(f"SKU-{n:03}", Decimal("1"), 1) for n in range(60))
    env.states.mark_delivered("1001", DIGEST, items, "USD", T0)
    assert env.refund(refund_event(message_id="big")).outcome is Outcome.WAITING
    # When another refund of the same order comes
    other = env.refund(refund_event(message_id="small", products=[{"sku": "SKU-059", "quantity": 1}]))
    # Then it waits for the first to finish; nothing of it is sent
    assert other.outcome is Outcome.WAITING
    assert "another refund" in other.reason
    assert len(env.poster.posts) == 1


def test_a_refund_that_lost_a_race_is_planned_again_on_what_the_winner_left(env: Env) -> None:
    # Given a delivered order, and another refund that cancels both PROD_A just after this one read it
    delivered(env.states)
    states = env.states
    original = states.mark_cancel_began
    raced: list[bool] = []

    def racing_mark(state: OrderState, *args: Any, **kwargs: Any) -> OrderState:
        if not raced:
            raced.append(True)
            states.record_cancel(state, {"other"}, [ItemLine("PROD_A", Decimal("5.50"), 2)])
        return original(state, *args, **kwargs)

    states.mark_cancel_began = racing_mark  # type: ignore[method-assign]
    # When the full refund is relayed
    result = env.refund(refund_event())
    # Then it was planned again and cancels only what the other refund left
    assert result.outcome is Outcome.DELIVERED
    assert env.sent() == [{"order_id": "1001", "items": [{"sku": "PROD_B", "price": 19.999, "quantity": 1}]}]
    assert env.state().remaining() == ()


# Wiring, URL and metrics


def test_the_cancel_url_is_joined_to_the_api_url_with_or_without_a_trailing_slash() -> None:
    assert cancel_url("https://api.refersion.com/v2") == "https://api.refersion.com/v2/conversion/cancel"
    assert cancel_url("http://127.0.0.1:8080/v2/") == "http://127.0.0.1:8080/v2/conversion/cancel"
    with pytest.raises(ValueError, match="https"):
        cancel_url("http://api.refersion.com/v2")


def test_extra_metrics_are_counted_besides_the_outcome() -> None:
    result = RecordResult(
        "m-1", Outcome.SKIPPED, kind=RecordKind.REFUND, extra_metrics=(REFUND_SKIPPED_NO_CONVERSION,)
    )
    metrics.clear_metrics()
    report_outcome(result)
    names = set(metrics.metric_set)
    metrics.clear_metrics()
    assert names == {"refund_skipped", REFUND_SKIPPED_NO_CONVERSION}
