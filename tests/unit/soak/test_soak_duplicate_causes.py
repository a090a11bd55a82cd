"""How the soak names the cause of a duplicate when the relay and the sandbox disagree about an answer."""

from __future__ import annotations

from soak.accounting import _late_answers
from soak.settings import ANSWERED, LATE_TIMEOUT


def test_an_answer_the_relay_never_got_in_time_counts_as_a_late_timeout_not_an_answered_post() -> None:
    # Given two accepted posts the sandbox answered, and one post the relay logged as unanswered beyond
    # what the sandbox itself left unanswered (its answer came after the relay's deadline)
    causes = [ANSWERED, ANSWERED]
    # When the causes are named
    _late_answers(causes, 1)
    # Then one is the no-answer window (a late timeout), the other stays answered
    assert causes == [LATE_TIMEOUT, ANSWERED]


def test_without_such_a_post_every_answered_post_stays_answered() -> None:
    causes = [ANSWERED, ANSWERED]
    _late_answers(causes, 0)
    assert causes == [ANSWERED, ANSWERED]
