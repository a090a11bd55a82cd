"""Issue 13 part 4: a count per failing AWS dependency (`aws_<dependency>_error`), where the relay catches it.

Each count goes out twice: under the relay's usual dimensions (what an alarm watches) and, as an EMF line of
its own, with an `operation` dimension saying which call failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from handler.credentials import CredentialsError, SecretsManagerKeyPairs
from handler.delivery import Delivery
from handler.idempotency import DynamoDBOrderLedger
from handler.observability import metrics
from handler.outcomes import Outcome, RecordResult
from handler.pacing import SqsVisibilityPacer
from handler.quarantine import QuarantineError, SqsQuarantine
from handler.triggers import InboundRecord
from local.lambda_shapes import FakeLambdaContext
from tests.support.fakes import InMemoryDynamoDB, RecordingSqsClient, answer


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def counted(name: str) -> int:
    entry = metrics.metric_set.get(name)
    return 0 if entry is None else len(entry["Value"])


def operation_lines(out: str, name: str) -> list[str]:
    """The `operation` of each EMF line printed for `name`."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    return [line["operation"] for line in lines if name in line]


class _FailingSqs:
    def send_message(self, **_: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="https://sqs.example")


class _SecretsClient:
    def __init__(self, *, fail: bool, secret: str = "not json") -> None:
        self._fail = fail
        self._secret = secret

    def get_secret_value(self, **_: Any) -> dict[str, Any]:
        if self._fail:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "GetSecretValue")
        return {"SecretString": self._secret, "Name": "refersion/keys"}


def test_a_failed_quarantine_send_counts_an_sqs_error(capsys: pytest.CaptureFixture[str]) -> None:
    quarantine = SqsQuarantine(_FailingSqs(), "https://sqs.example/dlq")  # type: ignore[arg-type]
    with pytest.raises(QuarantineError):
        quarantine.send("{}", RecordResult("m-1", Outcome.INVALID, reason="bad"))
    assert counted("aws_sqs_error") == 1
    assert operation_lines(capsys.readouterr().out, "aws_sqs_error") == ["SendMessage"]


def test_failed_pacing_counts_an_sqs_error(capsys: pytest.CaptureFixture[str]) -> None:
    client = RecordingSqsClient()
    client.error = EndpointConnectionError(endpoint_url="https://sqs.example")
    pacer = SqsVisibilityPacer(client, "https://sqs.example/q", 30, 3600)  # type: ignore[arg-type]
    inbound = InboundRecord("m-1", "{}", receipt_handle="rh-1")
    pacer.pace([(inbound, RecordResult("m-1", Outcome.RETRY))])
    assert counted("aws_sqs_error") == 1
    assert operation_lines(capsys.readouterr().out, "aws_sqs_error") == ["ChangeMessageVisibilityBatch"]


def test_an_unreadable_secret_counts_a_secrets_manager_error_and_a_malformed_one_does_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given Secrets Manager throttles the call
    with pytest.raises(CredentialsError):
        SecretsManagerKeyPairs(_SecretsClient(fail=True), "refersion/keys", 0).current()  # type: ignore[arg-type]
    # Then one failure of the dependency is counted
    assert counted("aws_secretsmanager_error") == 1
    assert operation_lines(capsys.readouterr().out, "aws_secretsmanager_error") == ["GetSecretValue"]
    # And a secret that was read but is not JSON is a configuration problem, not a failing dependency
    with pytest.raises(CredentialsError):
        SecretsManagerKeyPairs(_SecretsClient(fail=False), "refersion/keys", 0).current()  # type: ignore[arg-type]
    assert counted("aws_secretsmanager_error") == 1


@pytest.mark.parametrize(
    ("failing", "operation"), [("PutItem", "idempotency_lock"), ("UpdateItem", "idempotency_save")]
)
def test_an_idempotency_table_failure_counts_a_dynamodb_error(
    failing: str, operation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = InMemoryDynamoDB()
    table.fail(failing)
    ledger = DynamoDBOrderLedger(table, "orders")  # type: ignore[arg-type]
    ledger.register_context(FakeLambdaContext())  # type: ignore[arg-type]
    ledger.deliver_once("O-1", b"{}", lambda: Delivery(Outcome.DELIVERED, answer=answer(200)))
    assert counted("aws_dynamodb_error") == 1
    assert operation_lines(capsys.readouterr().out, "aws_dynamodb_error") == [operation]
