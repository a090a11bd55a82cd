"""Each order credited once (handler.idempotency): Powertools idempotency over an in-memory table.

DynamoDBOrderLedger and Powertools' persistence layer are the real code; only the DynamoDB client is
the in-memory stand-in of tests.support.fakes, so the branches where the table fails can be reached.
The same first three scenarios run against InMemoryLedger, the fake the relay's unit tests use, so
that fake cannot drift from what it stands for.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from handler.delivery import Delivery
from handler.idempotency import DynamoDBOrderLedger, OrderLedger
from handler.outcomes import Outcome
from local.lambda_shapes import FakeLambdaContext
from tests.support.fakes import InMemoryDynamoDB, InMemoryLedger, answer

BODY = b'{"order_id":"O-1","items":[]}'


def _delivery(status: int) -> Delivery:
    outcome = Outcome.DELIVERED if status < 300 else Outcome.RETRY
    return Delivery(outcome, answer=answer(status), attempts=1)


class Posts:
    """A delivery callback that counts how often it ran."""

    def __init__(self, *statuses: int) -> None:
        self._statuses = list(statuses)
        self.count = 0

    def __call__(self) -> Delivery:
        self.count += 1
        return _delivery(self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0])


def dynamodb_ledger(table: InMemoryDynamoDB | None = None) -> DynamoDBOrderLedger:
    ledger = DynamoDBOrderLedger(table or InMemoryDynamoDB(), "orders")  # type: ignore[arg-type]
    ledger.register_context(FakeLambdaContext())  # type: ignore[arg-type]
    return ledger


LEDGERS: dict[str, Callable[[], Any]] = {"dynamodb": dynamodb_ledger, "in-memory fake": InMemoryLedger}


@pytest.mark.parametrize("make_ledger", LEDGERS.values(), ids=LEDGERS.keys())
class TestOncePerOrder:
    def test_a_delivered_order_is_not_posted_again(self, make_ledger: Callable[[], OrderLedger]) -> None:
        ledger, posts = make_ledger(), Posts(200)
        first = ledger.deliver_once("O-1", BODY, posts)
        second = ledger.deliver_once("O-1", BODY, posts)
        assert (first.outcome, second.outcome, posts.count) == (Outcome.DELIVERED, Outcome.DUPLICATE, 1)
        assert "with a different body" not in second.reason

    def test_an_order_not_delivered_is_not_remembered(self, make_ledger: Callable[[], OrderLedger]) -> None:
        # Given a first post answered 503, when the order comes back, then it is posted again
        ledger, posts = make_ledger(), Posts(503, 200)
        assert ledger.deliver_once("O-1", BODY, posts).outcome is Outcome.RETRY
        assert ledger.deliver_once("O-1", BODY, posts).outcome is Outcome.DELIVERED
        assert posts.count == 2

    def test_a_duplicate_with_another_body_says_its_changes_were_not_sent(
        self, make_ledger: Callable[[], OrderLedger]
    ) -> None:
        ledger, posts = make_ledger(), Posts(200)
        ledger.deliver_once("O-1", BODY, posts)
        again = ledger.deliver_once("O-1", BODY.replace(b"[]", b"[1]"), posts)
        assert again.outcome is Outcome.DUPLICATE
        assert again.reason.endswith("with a different body (this copy's changes were not sent)")
        assert posts.count == 1


def test_an_order_being_delivered_elsewhere_comes_back_later_without_a_post() -> None:
    # Given an order whose delivery is under way (the nested call stands for a concurrent invocation)
    ledger, posts = dynamodb_ledger(), Posts(200)
    during: list[Delivery] = []

    def first_delivery() -> Delivery:
        during.append(ledger.deliver_once("O-1", BODY, posts))
        return posts()

    # When the same order comes in meanwhile
    assert ledger.deliver_once("O-1", BODY, first_delivery).outcome is Outcome.DELIVERED
    # Then it is a retry, and only the first one posted
    [concurrent] = during
    assert concurrent == Delivery(
        Outcome.RETRY, reason="another invocation is delivering this order right now"
    )
    assert posts.count == 1


def test_an_unavailable_table_posts_nothing_and_retries() -> None:
    table = InMemoryDynamoDB()
    table.fail("PutItem")
    posts = Posts(200)
    delivery = dynamodb_ledger(table).deliver_once("O-1", BODY, posts)
    assert delivery == Delivery(Outcome.RETRY, reason="idempotency table unavailable (ClientError)")
    assert posts.count == 0


def test_an_order_delivered_but_not_recorded_is_still_acknowledged(relay_logs: io.StringIO) -> None:
    # Given a table that stops answering between the post and the record of its success
    table = InMemoryDynamoDB()
    table.fail("UpdateItem")
    # When the order is delivered
    delivery = dynamodb_ledger(table).deliver_once("O-1", BODY, Posts(200))
    # Then it counts as delivered (posting it again would credit it twice), and the gap is logged
    assert delivery.outcome is Outcome.DELIVERED
    assert "order delivered but not recorded in the idempotency table" in relay_logs.getvalue()


def test_a_failed_post_whose_record_cannot_be_cleared_keeps_refersion_s_answer() -> None:
    table = InMemoryDynamoDB()
    table.fail("DeleteItem")
    delivery = dynamodb_ledger(table).deliver_once("O-1", BODY, Posts(503))
    assert delivery.outcome is Outcome.RETRY
    assert delivery.answer is not None
    assert delivery.answer.status == 503
