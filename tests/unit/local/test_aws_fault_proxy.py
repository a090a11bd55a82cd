"""The AWS fault proxy's pieces that need no socket: reading a call, writing a fault, drawing rules."""

from __future__ import annotations

import json
import random

import pytest
from botocore.retries.standard import ThrottledRetryableChecker

from handler.config import Settings
from handler.wiring import _sdk_config
from local.aws_faults import FaultRule, attempts_per_call, fault_answer, identify
from soak.aws_phases import AWS_FAULT_WEIGHTS, AwsPhase, phase_rules


def test_a_json_protocol_call_is_read_from_its_target_header() -> None:
    body = json.dumps({"TableName": "t", "Key": {"id": {"S": "k"}}}).encode()
    service, operation, request = identify({"x-amz-target": "DynamoDB_20120810.UpdateItem"}, body)
    assert (service, operation, request["Key"]) == ("dynamodb", "UpdateItem", {"id": {"S": "k"}})
    assert identify({"x-amz-target": "AmazonSQS.SendMessage"}, b"{}")[:2] == ("sqs", "SendMessage")


def test_a_query_protocol_call_is_read_from_its_form_and_credential_scope() -> None:
    headers = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20261129/us-east-1/sqs/aws4_request, X"}
    service, operation, request = identify(headers, b"Action=SendMessage&MessageBody=hello+there")
    assert (service, operation, request["MessageBody"]) == ("sqs", "SendMessage", "hello there")


@pytest.mark.parametrize("service", ["dynamodb", "sqs", "secretsmanager"])
def test_a_throttle_is_a_code_botocore_retries_as_a_throttle(service: str) -> None:
    answer = fault_answer(service, "throttle", json_protocol=True)
    code = answer.headers[[k for k, _ in answer.headers].index("x-amzn-ErrorType")][1]
    assert answer.status == 400
    assert code == json.loads(answer.body)["__type"]
    assert code in ThrottledRetryableChecker._THROTTLED_ERROR_CODES  # type: ignore[attr-defined]  # botocore: class attribute the stubs omit
    query = fault_answer(service, "throttle_after", json_protocol=False)
    assert f"<Code>{code}</Code>" in query.body.decode()


def test_server_errors_are_500_and_503() -> None:
    assert fault_answer("dynamodb", "500", json_protocol=True).status == 500
    assert fault_answer("sqs", "503_after", json_protocol=True).status == 503


def test_a_rule_names_a_known_fault_and_service() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultRule("sqs", "*", "explode")
    with pytest.raises(ValueError, match="unknown service"):
        FaultRule("s3", "*", "drop")
    assert FaultRule("sqs", "*", "drop").matches("sqs", "SendMessage")
    assert not FaultRule("sqs", "SendMessage", "drop").matches("sqs", "ChangeMessageVisibilityBatch")


def test_a_rule_with_request_text_picks_only_the_calls_whose_request_holds_it() -> None:
    # Given a rule for Powertools' idempotency records only (their keys start "refersion-order#")
    rule = FaultRule("dynamodb", "UpdateItem", "503", request_contains="refersion-order#")
    # Then an order-state write to the same table, same operation, is not picked
    assert rule.matches("dynamodb", "UpdateItem", json.dumps({"Key": {"id": {"S": "refersion-order#ab"}}}))
    assert not rule.matches("dynamodb", "UpdateItem", json.dumps({"Key": {"id": {"S": "order-state#A"}}}))


def test_botocore_max_attempts_counts_retries_and_total_max_attempts_all_attempts() -> None:
    assert attempts_per_call({"mode": "standard", "max_attempts": 3}) == 4
    assert attempts_per_call({"total_max_attempts": 2}) == 2
    assert attempts_per_call(None) == 3


def test_the_relays_aws_clients_make_one_attempt_per_call() -> None:
    # The fault tests and the soak count one attempt per call (handler/budget.py): say so if that changes
    settings = Settings.from_env({"REFERSION_SECRET_ID": "-", "DEAD_LETTER_QUEUE_URL": "-"})
    assert attempts_per_call(getattr(_sdk_config(settings), "retries", None)) == 1


def test_a_phase_faults_each_attempt_with_the_weights_it_states() -> None:
    # Given the rules of a one-service phase, drawn in order as the proxy draws them
    rules = phase_rules(AwsPhase("DynamoDB", ("dynamodb",)))
    rng = random.Random(7)
    drawn: dict[str, int] = dict.fromkeys(AWS_FAULT_WEIGHTS, 0)
    draws = 40_000
    for _ in range(draws):
        fired = next((r for r in rules if rng.random() < r.probability), None)
        if fired is not None:
            drawn[fired.fault] += 1
    # Then each fault fires with its weight, within sampling error
    for fault, percent in AWS_FAULT_WEIGHTS.items():
        assert drawn[fault] / draws * 100 == pytest.approx(percent, abs=0.6), fault
