"""Posting one order body (handler.delivery): the key pair, refresh-once on 401/403, the outcome."""

from __future__ import annotations

import io

from handler.delivery import Deliverer
from handler.outcomes import Outcome
from tests.support.fakes import KEYS, FakeKeyPairs, ScriptedPoster, answer, no_answer

BODY = b'{"order_id":"O-1"}'


def test_keys_refused_again_after_a_refresh_are_a_retry_after_two_posts() -> None:
    keys, poster = FakeKeyPairs(), ScriptedPoster(answer(403))
    delivery = Deliverer(keys, poster).deliver(BODY)
    assert (delivery.outcome, delivery.attempts) == (Outcome.RETRY, 2)
    assert delivery.reason == "keys rejected: Refersion answered 403"
    assert keys.refreshes == 1


def test_keys_that_cannot_be_read_again_keep_the_refusal_after_one_post(relay_logs: io.StringIO) -> None:
    # Given Refersion refuses the cached pair and Secrets Manager cannot be read to refresh it
    keys, poster = FakeKeyPairs(), ScriptedPoster(answer(401))
    keys.fail(on_refresh_only=True)
    # When an order is delivered
    delivery = Deliverer(keys, poster).deliver(BODY)
    # Then it is posted once, comes back for a retry, and the key problem is logged
    assert (delivery.outcome, delivery.attempts) == (Outcome.RETRY, 1)
    assert delivery.reason == "keys rejected: Refersion answered 401"
    assert len(poster.posts) == 1
    assert "Refersion key pair unavailable" in relay_logs.getvalue()


def test_a_rejection_quotes_refersion_s_answer_without_personal_data() -> None:
    poster = ScriptedPoster(answer(400, "customer jdoe@domain.com: bad email"))
    delivery = Deliverer(FakeKeyPairs(), poster).deliver(BODY)
    assert delivery.outcome is Outcome.REJECTED
    assert delivery.reason.startswith("Refersion answered 400: customer ")
    assert "jdoe@domain.com" not in delivery.reason


def test_no_answer_is_a_retry_that_says_what_happened() -> None:
    delivery = Deliverer(FakeKeyPairs(), ScriptedPoster(no_answer("connection dropped"))).deliver(BODY)
    assert (delivery.outcome, delivery.reason, delivery.attempts) == (Outcome.RETRY, "connection dropped", 1)


def test_the_current_pair_is_sent() -> None:
    poster = ScriptedPoster(answer(201))
    assert Deliverer(FakeKeyPairs(), poster).deliver(BODY).outcome is Outcome.DELIVERED
    assert poster.posts == [(BODY, KEYS)]
