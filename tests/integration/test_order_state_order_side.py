"""Order-side transitions added for issues 11-13, on the DynamoDB store (moto over HTTP) and the fake alike:
putting the post-began mark back when nothing was sent, and remembering a 4xx per record."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handler.order_state import OrderStates, RejectedRecord, StateChanged
from handler.order_state_dynamodb import DynamoDBOrderStates
from local.aws import LocalAws, RelayResources
from tests.support.fakes_order_state import InMemoryOrderStates
from tests.support.order_state_data import T0, Clock

pytestmark = pytest.mark.integration


@pytest.fixture(params=["dynamodb", "in-memory"])
def store(request: pytest.FixtureRequest) -> OrderStates:
    if request.param == "in-memory":
        return InMemoryOrderStates(clock=Clock())
    local_aws: LocalAws = request.getfixturevalue("local_aws")
    resources: RelayResources = request.getfixturevalue("resources")
    return DynamoDBOrderStates(local_aws.client("dynamodb"), resources.table_name, clock=Clock())


def test_a_post_that_sent_nothing_removes_its_own_mark(store: OrderStates) -> None:
    store.mark_seen("2001")
    store.mark_post_began("2001", T0)
    state = store.mark_post_not_sent("2001", T0, None)
    assert state.post_began_at is None
    assert not state.post_in_doubt


def test_a_post_that_sent_nothing_puts_back_the_earlier_unanswered_post(store: OrderStates) -> None:
    # Given an earlier post left unanswered, then a new post that could not connect
    store.mark_post_began("2002", T0)
    store.mark_answered("2002", False, T0 + timedelta(seconds=1))
    store.mark_post_began("2002", T0 + timedelta(minutes=5))
    # When its mark is put back
    state = store.mark_post_not_sent("2002", T0 + timedelta(minutes=5), T0)
    # Then the earlier post is still in doubt, counted from when it began
    assert (state.post_began_at, state.post_in_doubt) == (T0, True)


def test_a_later_post_s_mark_is_never_put_back(store: OrderStates) -> None:
    store.mark_post_began("2003", T0)
    store.mark_post_began("2003", T0 + timedelta(seconds=3))  # another invocation's post
    with pytest.raises(StateChanged):
        store.mark_post_not_sent("2003", T0, None)
    state = store.get("2003")
    assert state is not None
    assert state.post_began_at == T0 + timedelta(seconds=3)


def test_a_rejection_is_remembered_for_its_record_only(store: OrderStates) -> None:
    store.mark_rejected("2004", RejectedRecord("msg-1", 422, "Refersion answered 422: bad sku", T0))
    state = store.mark_rejected("2004", RejectedRecord("msg-2", 400, "Refersion answered 400", T0))
    found = state.rejection_of("msg-1")
    assert found == RejectedRecord("msg-1", 422, "Refersion answered 422: bad sku", T0)
    assert state.rejection_of("msg-3") is None  # a redriven copy is a new message


def test_a_repeated_rejection_write_is_harmless(store: OrderStates) -> None:
    rejected = RejectedRecord("msg-1", 422, "Refersion answered 422", T0)
    store.mark_rejected("2005", rejected)
    state = store.mark_rejected("2005", rejected)
    assert state.rejected_records == (rejected,)
