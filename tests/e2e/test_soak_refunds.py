"""The soak's refund run (issue 11; `make soak` runs it at 400 orders), small."""

from __future__ import annotations

import pytest

from soak import DEFAULT_SEED, run_soak
from soak.refund_accounting import WAIT_REASONS
from soak.refunds import RefundExtra

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

ORDERS = 40


def test_refunds_under_faults_and_an_outage_are_applied_once_and_never_lost() -> None:
    # Given the soak's plan with full, partial, re-published and early refunds, EnableRefunds=true, the
    # sandbox's fault mix on the paid-order and cancel paths, and an outage (503 to everything) of 6 s
    extra = RefundExtra(outage_seconds=6)
    result = run_soak(orders=ORDERS, seed=DEFAULT_SEED, kills=0, timeout=120, extra=extra)
    summary = "\n".join(result.failures())
    figures = extra.figures
    assert figures is not None

    # Then every order was credited and every refund applied, none lost or left in the dead-letter queue
    assert (result.delivered, result.lost) == (ORDERS, [])
    assert figures.applied_once == figures.refunds >= 4
    assert (figures.lost, figures.in_dlq) == ([], [])
    # ... a cancel was applied again only after it went unanswered, never to an order not refunded
    assert figures.applied_twice_unexplained == []
    assert figures.unexpected_cancels == []
    # ... no order's net quantity went below 0 or differs from ordered - refunded without a cause
    assert figures.below_zero_unexplained == []
    assert figures.net_unexplained == []
    # ... the re-published refunds ended duplicate, and refunds waited for orders the outage held back
    assert figures.outcomes["duplicate"] >= 1
    assert figures.waiting_reasons[WAIT_REASONS[0][1]] >= 1
    assert figures.outage_requests >= 1
    assert result.passed, summary
