"""The conversion webhook receiver (CONTRACT §10) with an in-memory store and token source: status codes in
check order, the token rules (rotation, trailing slash), base64 bodies, one confirmation per conversion."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from handler.confirmation_receiver import MAX_BODY_BYTES, ConfirmationReceiver, Outcome
from handler.confirmation_tokens import TokenUnavailable, token_from_path, token_matches
from handler.observability import metrics
from tests.support.confirmations import (
    NEVER_LOGGED_HERE,
    PREVIOUS_TOKEN,
    TOKEN,
    conversion_payload,
    url_event,
)
from tests.support.fakes_order_state import InMemoryOrderStates
from tests.support.keys import NEVER_LOGGED
from tests.support.logs import captured_relay_logs

NOW = datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)


class Tokens:
    """A TokenSource: the accepted tokens, and how many fresh reads were asked for."""

    def __init__(self, *tokens: str, unavailable: bool = False) -> None:
        self.accepted: Sequence[str] = tokens
        self.refreshes = 0
        self.unavailable = unavailable

    def tokens(self, *, refresh_older_than: float | None = None) -> Sequence[str]:
        if self.unavailable:
            raise TokenUnavailable("secret tok: cannot be read (AccessDeniedException)")
        if refresh_older_than is not None:
            self.refreshes += 1
        return self.accepted


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    """The receiver's log lines, checked free of the tokens and the webhook's customer details."""
    with captured_relay_logs((*NEVER_LOGGED, *NEVER_LOGGED_HERE)) as buffer:
        yield buffer


@pytest.fixture
def store() -> InMemoryOrderStates:
    return InMemoryOrderStates(clock=lambda: NOW)


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(TOKEN)


@pytest.fixture
def receiver(tokens: Tokens, store: InMemoryOrderStates) -> ConfirmationReceiver:
    return ConfirmationReceiver(tokens, store, clock=lambda: NOW)


def lines(logs: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]


def test_a_conversion_is_stored_once_and_answered_200(
    receiver: ConfirmationReceiver, store: InMemoryOrderStates
) -> None:
    # Given a conversion webhook on the right token
    answer = receiver.handle(url_event(conversion_payload("9001", "1001")))
    # Then 200 and one confirmation of the order, without customer data
    assert answer["statusCode"] == 200
    (confirmation,) = store.confirmations_for("1001")
    assert (confirmation.conversion_id, confirmation.status, confirmation.affiliate_id) == (
        "9001",
        "PENDING",
        "77",
    )
    assert confirmation.received_at == NOW
    # When Refersion sends the same conversion again, then 200 and still one confirmation
    again = receiver.handle(url_event(conversion_payload("9001", "1001")))
    assert again["statusCode"] == 200
    assert json.loads(again["body"]) == {"outcome": "duplicate"}
    assert len(store.confirmations_for("1001")) == 1


def test_two_conversions_of_one_order_are_both_kept(
    receiver: ConfirmationReceiver, store: InMemoryOrderStates
) -> None:
    receiver.handle(url_event(conversion_payload("9001", "1001")))
    receiver.handle(url_event(conversion_payload("9002", "1001")))
    assert [c.conversion_id for c in store.confirmations_for("1001")] == ["9001", "9002"]


@pytest.mark.parametrize("path", ["/", "", "/wrong-token", f"/{TOKEN}x", f"/{TOKEN[:-1]}", f"/{TOKEN}/extra"])
def test_a_wrong_or_missing_token_is_403_with_an_empty_body_and_nothing_stored(
    receiver: ConfirmationReceiver, store: InMemoryOrderStates, path: str
) -> None:
    answer = receiver.handle(url_event(conversion_payload(), path=path))
    assert answer == {"statusCode": 403, "body": ""}
    assert store.confirmations_for("20150401102883") == ()
    assert store.calls == 1  # the look-up just above: the receiver never touched the store


@pytest.mark.parametrize("path", [f"/{TOKEN}", f"/{TOKEN}/", f"/hooks/{TOKEN}", f"//{TOKEN}//"])
def test_the_token_is_the_last_non_empty_segment_of_the_path(
    receiver: ConfirmationReceiver, path: str
) -> None:
    assert receiver.handle(url_event(conversion_payload(), path=path))["statusCode"] == 200


def test_during_a_rotation_the_previous_token_is_accepted_too(store: InMemoryOrderStates) -> None:
    # Given a secret rotated once: a current and a previous token
    receiver = ConfirmationReceiver(Tokens(TOKEN, PREVIOUS_TOKEN), store, clock=lambda: NOW)
    # Then both are admitted, and nothing else
    assert receiver.handle(url_event(conversion_payload("1"), path=f"/{TOKEN}"))["statusCode"] == 200
    assert receiver.handle(url_event(conversion_payload("2"), path=f"/{PREVIOUS_TOKEN}"))["statusCode"] == 200
    assert receiver.handle(url_event(conversion_payload("3"), path="/older"))["statusCode"] == 403


def test_a_refused_token_asks_for_a_fresh_read_once(receiver: ConfirmationReceiver, tokens: Tokens) -> None:
    # Given a token that matches nothing cached: the secret may have been rotated since
    receiver.handle(url_event(conversion_payload(), path="/new-token"))
    assert tokens.refreshes == 1
    # And a token that matches asks for none
    receiver.handle(url_event(conversion_payload()))
    assert tokens.refreshes == 1


def test_an_unreadable_token_secret_is_a_500_not_a_403(store: InMemoryOrderStates) -> None:
    receiver = ConfirmationReceiver(Tokens(unavailable=True), store, clock=lambda: NOW)
    answer = receiver.handle(url_event(conversion_payload()))
    assert answer["statusCode"] == 500
    assert store.calls == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_than_post_are_405(receiver: ConfirmationReceiver, method: str) -> None:
    answer = receiver.handle(url_event(conversion_payload(), method=method))
    assert answer["statusCode"] == 405
    assert answer["headers"]["allow"] == "POST"


def test_the_checks_come_in_order_token_then_size_then_body(receiver: ConfirmationReceiver) -> None:
    too_large_and_not_json = b"x" * (MAX_BODY_BYTES + 1)
    # Given a body both too large and not JSON: a wrong token wins, then the size
    assert receiver.handle(url_event(too_large_and_not_json, path="/bad"))["statusCode"] == 403
    assert receiver.handle(url_event(too_large_and_not_json))["statusCode"] == 413
    assert receiver.handle(url_event(b"not json"))["statusCode"] == 400


def test_the_size_limit_counts_bytes_after_base64_decoding(receiver: ConfirmationReceiver) -> None:
    # Given a JSON body of exactly 64 KB, padded with spaces (its base64 form is a third longer)
    body = json.dumps(conversion_payload()).encode()
    exactly = body + b" " * (MAX_BODY_BYTES - len(body))
    # Then it is accepted, base64-encoded or not; one byte more is 413
    assert receiver.handle(url_event(exactly, base64_encoded=True))["statusCode"] == 200
    assert receiver.handle(url_event(exactly))["statusCode"] == 200
    assert receiver.handle(url_event(exactly + b" ", base64_encoded=True))["statusCode"] == 413
    assert receiver.handle(url_event(exactly + b" "))["statusCode"] == 413


def test_a_base64_body_is_decoded_and_bad_base64_is_400(
    receiver: ConfirmationReceiver, store: InMemoryOrderStates
) -> None:
    assert receiver.handle(url_event(conversion_payload("7", "77"), base64_encoded=True))["statusCode"] == 200
    assert [c.conversion_id for c in store.confirmations_for("77")] == ["7"]
    event = url_event(b"{}")
    event.update(body="***not base64***", isBase64Encoded=True)
    assert receiver.handle(event)["statusCode"] == 400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON"),
        (b"", "the body is not JSON"),
        (b"[1, 2]", "the body is not a JSON object"),
        (json.dumps({"id": "9001"}).encode(), "no order_id"),
        (json.dumps({"order_id": "1001", "id": " "}).encode(), "no conversion id"),
        (json.dumps({"order_id": "1001", "id": 1.5}).encode(), "no conversion id"),
    ],
)
def test_a_body_without_what_a_confirmation_needs_is_400(
    receiver: ConfirmationReceiver, store: InMemoryOrderStates, body: bytes, reason: str
) -> None:
    answer = receiver.handle(url_event(body))
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["reason"] == reason
    assert store.calls == 0


def test_a_storage_failure_is_500_so_that_refersion_sends_again(
    receiver: ConfirmationReceiver, store: InMemoryOrderStates
) -> None:
    store.outage = 1
    assert receiver.handle(url_event(conversion_payload("9001", "1001")))["statusCode"] == 500
    # When Refersion sends it again, it is stored
    assert receiver.handle(url_event(conversion_payload("9001", "1001")))["statusCode"] == 200
    assert len(store.confirmations_for("1001")) == 1


def test_each_request_gets_one_outcome_line_without_the_token(
    receiver: ConfirmationReceiver, logs: io.StringIO
) -> None:
    # Given a stored conversion, a duplicate, a refused token and a bad body
    receiver.handle(url_event(conversion_payload("9001", "1001")))
    receiver.handle(url_event(conversion_payload("9001", "1001")))
    receiver.handle(url_event(conversion_payload(), path=f"/{TOKEN}-guess"))
    receiver.handle(url_event(b"[]"))
    # Then four lines, each naming its outcome and status, with the ids when known
    found = [
        (line["outcome"], line["http_status"], line.get("order_id"), line.get("conversion_id"))
        for line in lines(logs)
    ]
    assert found == [
        ("stored", 200, "1001", "9001"),
        ("duplicate", 200, "1001", "9001"),
        ("forbidden", 403, None, None),
        ("bad_request", 400, None, None),
    ]


def test_each_outcome_is_counted_under_a_confirmation_metric_without_the_token(
    receiver: ConfirmationReceiver,
) -> None:
    metrics.clear_metrics()
    receiver.handle(url_event(conversion_payload("9001", "1001")))
    receiver.handle(url_event(conversion_payload(), path=f"/{TOKEN}-guess"))
    receiver.handle(url_event(conversion_payload(), method="GET"))
    serialized = json.dumps(metrics.serialize_metric_set())
    metrics.clear_metrics()
    declared = json.loads(serialized)["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    names = {metric["Name"] for metric in declared}
    assert names == {"confirmation_stored", "confirmation_forbidden", "confirmation_method_not_allowed"}
    assert TOKEN not in serialized


def test_every_outcome_has_a_status() -> None:
    from handler.confirmation_receiver import Result

    assert {Result(outcome).status for outcome in Outcome} == {200, 400, 403, 405, 413, 500}


def test_token_helpers() -> None:
    assert token_from_path("/a/b/") == "b"
    assert token_from_path("///") is None
    assert not token_matches(None, [TOKEN])
    assert not token_matches(TOKEN, [])
    assert token_matches("tök", ["tök"])  # non-ASCII compares as bytes, never a TypeError
