"""Pure rules of the order state (CONTRACT §11): keys, times, line arithmetic, which store errors retry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError, ReadTimeoutError

from handler.aws_retry import call_with_retries
from handler.order_state import (
    Delivered,
    ItemLine,
    LastPost,
    OrderState,
    StateUnavailable,
    format_time,
    merge_lines,
    parse_time,
    state_key,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


def failing(errors: list[Exception]) -> Callable[[], str]:
    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "done"

    return call


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException", 400),
        client_error("ProvisionedThroughputExceededException", 400),
        client_error("RequestLimitExceeded", 400),
        client_error("InternalServerError", 500),
        client_error("ServiceUnavailable", 503),
        client_error("SomethingNew", 502),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_transient_store_errors_are_retried_within_the_deadline(error: Exception) -> None:
    clock = FakeTime()
    assert (
        call_with_retries(failing([error, error]), 10.0, monotonic=clock.monotonic, sleep=clock.sleep)
        == "done"
    )
    assert len(clock.slept) == 2
    assert all(0 < delay <= 1.0 for delay in clock.slept)


def test_retries_stop_at_the_deadline_naming_the_last_error() -> None:
    clock = FakeTime()
    errors: list[Exception] = [client_error("ThrottlingException", 400)] * 1000
    with pytest.raises(StateUnavailable) as unavailable:
        call_with_retries(failing(errors), 3.0, monotonic=clock.monotonic, sleep=clock.sleep)
    assert unavailable.value.cause == "ThrottlingException"
    assert clock.now < 3.0
    assert 3 < len(clock.slept) < 30


@pytest.mark.parametrize(
    "error",
    [
        client_error("ValidationException", 400),
        client_error("AccessDeniedException", 400),
        client_error("ResourceNotFoundException", 400),
        ParamValidationError(report="bad"),
    ],
)
def test_errors_that_cannot_heal_are_not_retried(error: Exception) -> None:
    clock = FakeTime()
    with pytest.raises(StateUnavailable):
        call_with_retries(failing([error]), 10.0, monotonic=clock.monotonic, sleep=clock.sleep)
    assert clock.slept == []


def test_a_lost_condition_reaches_the_caller_untouched_and_untried_again() -> None:
    clock = FakeTime()
    with pytest.raises(ClientError):
        call_with_retries(
            failing([client_error("ConditionalCheckFailedException", 400)]),
            10.0,
            monotonic=clock.monotonic,
            sleep=clock.sleep,
        )
    assert clock.slept == []


def test_stored_times_sort_as_strings_in_time_order_whatever_the_zone() -> None:
    later_elsewhere = (T0 + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=-5)))
    assert format_time(T0) == "2026-11-20T10:00:00.000000Z"
    assert format_time(later_elsewhere) > format_time(T0)
    assert parse_time(format_time(later_elsewhere)) == later_elsewhere
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))


def test_keys_keep_short_ids_readable_and_hash_the_rest() -> None:
    assert state_key("1001") == "order-state#1001"
    assert state_key("a" * 1025).startswith("order-state-sha256#")
    assert state_key("a" * 1025) != state_key("a" * 1026)
    assert state_key("\ud800").startswith("order-state-sha256#")
    assert not state_key("1001").startswith("refersion-order#")


def test_lines_merge_by_sku_and_price_value() -> None:
    merged = merge_lines(
        [ItemLine("A", Decimal("5.50"), 1), ItemLine("A", Decimal("6"), 1)],
        [ItemLine("A", Decimal("5.5"), 2)],
    )
    assert merged == (ItemLine("A", Decimal("5.50"), 3), ItemLine("A", Decimal("6"), 1))
    assert str(merged[0].price) == "5.50"


def test_what_remains_is_delivered_less_cancelled() -> None:
    items = (ItemLine("A", Decimal("5.50"), 2), ItemLine("B", Decimal("1"), 1))
    state = OrderState(
        "1001", delivered=Delivered(T0, "d", items, "USD"), cancelled=(ItemLine("A", Decimal("5.5"), 2),)
    )
    assert state.remaining() == (ItemLine("B", Decimal("1"), 1),)
    assert OrderState("1001").remaining() == ()


@pytest.mark.parametrize(
    ("state", "in_doubt"),
    [
        (OrderState("1"), False),
        (OrderState("1", post_began_at=T0), True),
        (OrderState("1", post_began_at=T0, last_post=LastPost(True, T0)), False),
        (OrderState("1", post_began_at=T0, last_post=LastPost(False, T0)), True),
        (OrderState("1", post_began_at=T0, last_post=LastPost(True, T0 - timedelta(seconds=1))), True),
        (OrderState("1", post_began_at=T0, delivered=Delivered(T0, "d", (), "USD")), False),
    ],
)
def test_a_post_is_in_doubt_until_an_answer_after_it_was_recorded(state: OrderState, in_doubt: bool) -> None:
    assert state.post_in_doubt is in_doubt
