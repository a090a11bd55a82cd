"""The conversion webhook receiver (CONTRACT §10) end to end on a moto server: the real entry point, a real
Secrets Manager secret (rotated with put_secret_value), DynamoDB storage once per conversion id."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest

from handler.confirmation_receiver import ConfirmationReceiver
from handler.confirmation_tokens import SecretsManagerTokens
from handler.confirmations import forget_receiver, lambda_handler
from handler.order_state_dynamodb import DynamoDBOrderStates
from local.aws import LocalAws
from local.lambda_shapes import FakeLambdaContext
from tests.support.confirmation_stack import create_indexed_table, create_token_secret
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

pytestmark = pytest.mark.integration

NEWER = "/tokNEWER0123456789"


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    with captured_relay_logs((*NEVER_LOGGED, *NEVER_LOGGED_HERE)) as buffer:
        yield buffer


@pytest.fixture
def table(local_aws: LocalAws) -> str:
    return create_indexed_table(local_aws)


@pytest.fixture
def receiver_env(monkeypatch: pytest.MonkeyPatch, local_aws: LocalAws, table: str) -> Iterator[str]:
    """The receiver's environment on moto; yields the token secret's ARN (AWSCURRENT = TOKEN)."""
    secret_arn = create_token_secret(local_aws, PREVIOUS_TOKEN)
    # Rotate once: TOKEN becomes AWSCURRENT, PREVIOUS_TOKEN moves to AWSPREVIOUS.
    local_aws.client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString=TOKEN)
    for name, value in local_aws.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONFIRMATION_TOKEN_SECRET_ID", secret_arn)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", table)
    forget_receiver()
    yield secret_arn
    forget_receiver()


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    # Powertools' decorators leave lambda_handler untyped: its answer is Any.
    return cast(dict[str, Any], lambda_handler(event, FakeLambdaContext()))


def test_a_conversion_is_stored_once_per_conversion_id(
    receiver_env: str, local_aws: LocalAws, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same conversion sent twice and a second conversion of the order
    first = invoke(url_event(conversion_payload("9001", "1001")))
    again = invoke(url_event(conversion_payload("9001", "1001")))
    other = invoke(url_event(conversion_payload(9002, 1001), base64_encoded=True))
    # Then all are answered 200 and the order has two confirmations
    assert [first["statusCode"], again["statusCode"], other["statusCode"]] == [200, 200, 200]
    assert [json.loads(a["body"])["outcome"] for a in (first, again, other)] == [
        "stored",
        "duplicate",
        "stored",
    ]
    store = DynamoDBOrderStates(local_aws.client("dynamodb"), table)
    assert [c.conversion_id for c in store.confirmations_for("1001")] == ["9001", "9002"]
    # And the stored item holds no customer data
    item = local_aws.client("dynamodb").get_item(TableName=table, Key={"id": {"S": "confirmation#9001"}})[
        "Item"
    ]
    assert set(item) == {
        "id",
        "kind",
        "conversion_id",
        "order_id",
        "status",
        "affiliate_id",
        "received_at",
        "received_day",
        "expiration",
    }
    # And the metrics flushed by the entry point name the outcomes, never the token
    printed = capsys.readouterr().out
    assert "confirmation_stored" in printed
    assert TOKEN not in printed


def test_the_current_and_the_previous_token_are_accepted_and_no_other(
    receiver_env: str, local_aws: LocalAws
) -> None:
    assert invoke(url_event(conversion_payload("1"), path=f"/{TOKEN}/"))["statusCode"] == 200
    assert invoke(url_event(conversion_payload("2"), path=f"/{PREVIOUS_TOKEN}"))["statusCode"] == 200
    assert invoke(url_event(conversion_payload("3"), path="/not-the-token")) == {
        "statusCode": 403,
        "body": "",
    }


def test_a_secret_never_rotated_has_no_previous_version_and_still_works(
    monkeypatch: pytest.MonkeyPatch, local_aws: LocalAws, receiver_env: str
) -> None:
    fresh = create_token_secret(local_aws, TOKEN)
    monkeypatch.setenv("CONFIRMATION_TOKEN_SECRET_ID", fresh)
    forget_receiver()
    assert invoke(url_event(conversion_payload("1")))["statusCode"] == 200
    assert invoke(url_event(conversion_payload("2"), path=f"/{PREVIOUS_TOKEN}"))["statusCode"] == 403


def test_a_rotation_is_picked_up_on_a_mismatch_once_the_cache_is_30_seconds_old(
    receiver_env: str, local_aws: LocalAws
) -> None:
    # Given tokens read and cached (for 300 s) at t=0
    now = [0.0]
    tokens = SecretsManagerTokens(
        local_aws.client("secretsmanager"), receiver_env, 300, monotonic=lambda: now[0]
    )
    receiver = ConfirmationReceiver(tokens, InMemoryOrderStates())
    assert receiver.handle(url_event(conversion_payload("1")))["statusCode"] == 200
    # When the operator rotates the token again
    local_aws.client("secretsmanager").put_secret_value(SecretId=receiver_env, SecretString=NEWER[1:])
    # Then within 30 s the new token is refused (a stream of wrong tokens cannot force reads) ...
    now[0] = 29.0
    assert receiver.handle(url_event(conversion_payload("2"), path=NEWER))["statusCode"] == 403
    # ... and after 30 s a mismatch re-reads: the new token and the one before it are admitted
    now[0] = 30.0
    assert receiver.handle(url_event(conversion_payload("3"), path=NEWER))["statusCode"] == 200
    assert receiver.handle(url_event(conversion_payload("4"), path=f"/{TOKEN}"))["statusCode"] == 200
    assert receiver.handle(url_event(conversion_payload("5"), path=f"/{PREVIOUS_TOKEN}"))["statusCode"] == 403


def test_a_storage_failure_is_answered_500(
    monkeypatch: pytest.MonkeyPatch, receiver_env: str, logs: io.StringIO
) -> None:
    # Given a table that does not exist
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "no-such-table")
    forget_receiver()
    # Then the conversion is answered 500 (Refersion sends it again) and the line says why
    assert invoke(url_event(conversion_payload("9001", "1001")))["statusCode"] == 500
    (line,) = [json.loads(text) for text in logs.getvalue().splitlines() if "confirmation" in text]
    assert (line["outcome"], line["order_id"], line["conversion_id"]) == ("storage_failed", "1001", "9001")
    assert "ResourceNotFoundException" in line["reason"]


def test_an_unreachable_store_is_answered_500_within_the_budget(
    monkeypatch: pytest.MonkeyPatch, receiver_env: str, local_aws: LocalAws
) -> None:
    # Given a receiver whose DynamoDB endpoint refuses connections (the secret stays reachable)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    forget_receiver()
    assert invoke(url_event(conversion_payload("9001", "1001")))["statusCode"] == 500
