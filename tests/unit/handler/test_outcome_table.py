"""How an HTTP answer from Refersion is classified (handler.outcomes, CONTRACT §5)."""

from __future__ import annotations

import pytest

from handler.outcomes import HttpVerdict, Outcome, classify_status


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, HttpVerdict.DELIVERED),
        (201, HttpVerdict.DELIVERED),
        (204, HttpVerdict.DELIVERED),
        (401, HttpVerdict.KEYS_REFUSED),
        (403, HttpVerdict.KEYS_REFUSED),
        (408, HttpVerdict.RETRY),
        (425, HttpVerdict.RETRY),
        (429, HttpVerdict.RETRY),
        (500, HttpVerdict.RETRY),
        (502, HttpVerdict.RETRY),
        (503, HttpVerdict.RETRY),
        (400, HttpVerdict.REJECTED),
        (404, HttpVerdict.REJECTED),
        (409, HttpVerdict.REJECTED),
        (422, HttpVerdict.REJECTED),
        (302, HttpVerdict.RETRY),
    ],
)
def test_status_classification_follows_the_outcome_table(status: int, verdict: HttpVerdict) -> None:
    assert classify_status(status) is verdict


@pytest.mark.parametrize("outcome", list(Outcome))
def test_only_invalid_and_rejected_records_are_quarantined(outcome: Outcome) -> None:
    assert outcome.quarantined is (outcome in (Outcome.INVALID, Outcome.REJECTED))
