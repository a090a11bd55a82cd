"""The soak's confirmations runs (issue 12; `make soak` runs them at 300 orders each), small."""

from __future__ import annotations

import pytest

from soak import DEFAULT_SEED, run_soak
from soak.confirmations import COVERED, ConfirmationsExtra

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

ORDERS = 40


def test_with_confirmations_every_duplicate_is_late_or_unclicked() -> None:
    # Given the soak's plan and fault mix with EnableConfirmations=true, the receiver behind its local
    # Function URL, and webhooks for most carts (some later than the relay's wait, some carts unclicked)
    extra = ConfirmationsExtra(on=True)
    result = run_soak(orders=ORDERS, seed=DEFAULT_SEED, kills=0, timeout=120, extra=extra)
    summary = "\n".join(result.failures())

    # Then nothing was lost, and every webhook reached the receiver and was stored
    assert (result.delivered, result.lost) == (ORDERS, [])
    assert set(extra.webhooks) == {"200"}
    # ... unanswered posts were resolved by their confirmation, not posted again
    assert extra.confirmed >= 1
    # ... and no order whose webhook came in time was credited twice
    assert extra.duplicates[COVERED] == 0
    assert result.passed, summary
