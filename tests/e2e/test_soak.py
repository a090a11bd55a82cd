"""The fault-injection soak (soak/, `make soak`), small: a few hundred orders, one kill."""

from __future__ import annotations

import pytest

from soak import DEFAULT_SEED, FAULT_WEIGHTS, run_soak

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

ORDERS = 300


def test_under_faults_and_a_kill_nothing_is_lost_and_only_unanswered_posts_are_credited_twice() -> None:
    # Given 300 orders (plus invalid ones, re-published duplicates and non-orders) on the local stack,
    # a sandbox answering 30 % of posts with 5xx, 429, timeouts, dropped connections or slowly, and one
    # batch run in a process of its own, SIGKILLed while some of its posts are held by the sandbox
    result = run_soak(orders=ORDERS, seed=DEFAULT_SEED, kills=1, timeout=150)
    summary = "\n".join(result.failures())  # what failed, should anything

    # Then every fault of the mix happened, and the queue was drained
    assert {name for name, count in result.requests_by_fault.items() if count} >= set(FAULT_WEIGHTS)
    assert result.problems == [], result.problems
    assert result.invocation_errors == []
    # ... no order was lost, and every valid one was credited
    assert result.lost == []
    assert (result.delivered, result.undelivered) == (ORDERS, [])
    # ... every invalid one was quarantined with a reason, never posted; nothing else was credited
    assert result.invalid_not_quarantined == []
    assert result.invalid_posted == []
    assert sum(result.quarantined.values()) == len(result.invalid_ids)
    assert all(outcome == "invalid" and reason.strip() for outcome, reason in result.quarantined)
    assert result.unexpected_accepted == []
    assert result.non_orders_on_queue == 0
    # ... no fault that leaves the relay an answer (5xx, 429, drop before processing, slow) made a duplicate
    assert result.duplicates_unambiguous == 0
    # ... every duplicate is a post Refersion processed without the relay getting an answer
    assert result.duplicates_total <= sum(result.ambiguous_events.values())
    # ... and the kill happened mid-batch, doubling at most the requests in flight at that instant
    [kill] = result.kills
    assert kill.accepted_before_kill >= 1
    assert kill.in_flight >= 1
    assert kill.duplicates <= kill.in_flight
    assert result.quarantine_copies_unexplained == []
    assert result.left_behind == []
    assert result.passed, summary
