"""template.yaml's conversion confirmations (CONTRACT §10) and reconciliation indexes, for both settings of
EnableConfirmations, read with local/template.py's loader and resolver."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler.confirmation_receiver import ReceiverSettings
from handler.reconcile import CONFIRMATIONS_INDEX, DELIVERED_INDEX
from local.template import Scope, Template

CONDITIONAL = (
    "ConfirmationTokenSecret",
    "ConfirmationsFunction",
    "ConfirmationsFunctionLogGroup",
    "ConfirmationsFunctionRole",
    "ConfirmationsUrl4xxAlarm",
)
SCOPE = Scope(
    refs={
        "IdempotencyTable": "relay-table",
        "ConfirmationTokenSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:tok-AbCdEf",
        "OrderDeadLetterQueue": "https://sqs/dlq",
        "OrderQueue": "https://sqs/q",
    },
    parameters={"RefersionSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys-AbCdEf"},
)


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def scope(enabled: str) -> Scope:
    return Scope(refs=SCOPE.refs, parameters={**SCOPE.parameters, "EnableConfirmations": enabled})


def statements(template: Template, role: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in template.properties(role)["Policies"]:
        found.extend(policy["PolicyDocument"]["Statement"])
    return found


def test_confirmations_are_off_by_default_and_every_part_depends_on_the_switch(template: Template) -> None:
    assert template.parameter_default("EnableConfirmations") == "false"
    assert not template.condition("ConfirmationsEnabled", Scope())
    assert template.condition("ConfirmationsEnabled", scope("true"))
    for logical_id in CONDITIONAL:
        assert template.resource(logical_id)["Condition"] == "ConfirmationsEnabled", logical_id
    for output in ("ConfirmationsUrl", "ConfirmationTokenSecretArn", "ConfirmationTokenCommand"):
        assert template.document["Outputs"][output]["Condition"] == "ConfirmationsEnabled"


@pytest.mark.parametrize(("enabled", "switch"), [("false", "-"), ("true", "c")])
def test_the_relay_is_told_whether_confirmations_are_on_and_republishes_when_it_changes(
    template: Template, enabled: str, switch: str
) -> None:
    variables = template.resolve(template.function_variables("RelayFunction"), scope(enabled))
    assert variables["CONFIRMATIONS_ENABLED"] == enabled
    assert variables["CONFIRMATION_WAIT_SECONDS"] == "600"
    description = template.resolve(template.properties("RelayFunction")["VersionDescription"], scope(enabled))
    assert f"switches=--{switch} " in description
    assert len(description) <= 256


def test_the_receiver_runs_the_receiver_entry_point_with_bounded_concurrency(template: Template) -> None:
    function = template.properties("ConfirmationsFunction")
    assert template.resource("ConfirmationsFunction")["Type"] == "AWS::Serverless::Function"
    assert (function["Runtime"], function["Architectures"], function["CodeUri"]) == (
        "python3.13",
        ["arm64"],
        "src/",
    )
    assert function["Handler"] == "handler.confirmations.lambda_handler"
    assert function["ReservedConcurrentExecutions"] == {"Ref": "ConfirmationsConcurrency"}
    assert template.parameter_default("ConfirmationsConcurrency") == "5"
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "ConfirmationsFunctionLogGroup"}
    assert template.properties("ConfirmationsFunctionLogGroup")["RetentionInDays"] == {
        "Ref": "LogRetentionDays"
    }


def test_the_function_url_is_public_with_the_reason_written_next_to_it(template: Template) -> None:
    function = template.resource("ConfirmationsFunction")
    assert function["Properties"]["FunctionUrlConfig"]["AuthType"] == "NONE"
    skips = {skip["id"]: skip["comment"] for skip in function["Metadata"]["checkov"]["skip"]}
    assert (
        skips["CKV_AWS_258"] == "A secret in the path is the only authentication Refersion's webhooks allow."
    )


def test_the_receivers_environment_is_what_its_settings_read(template: Template) -> None:
    variables = template.resolve(template.function_variables("ConfirmationsFunction"), scope("true"))
    settings = ReceiverSettings.from_env(variables)
    assert settings.token_secret_id == SCOPE.refs["ConfirmationTokenSecret"]
    assert settings.table_name == "relay-table"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "refersion-confirmations"


def test_the_token_is_generated_long_and_without_punctuation(template: Template) -> None:
    generated = template.properties("ConfirmationTokenSecret")["GenerateSecretString"]
    assert generated["ExcludePunctuation"] is True
    assert generated["PasswordLength"] >= 32
    assert "SecretString" not in template.properties("ConfirmationTokenSecret")


def test_the_receiver_role_grants_only_what_it_uses(template: Template) -> None:
    granted = {
        (action, json.dumps(statement["Resource"]))
        for statement in statements(template, "ConfirmationsFunctionRole")
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    table = json.dumps({"Fn::GetAtt": ["IdempotencyTable", "Arn"]})
    logs = json.dumps({"Fn::GetAtt": ["ConfirmationsFunctionLogGroup", "Arn"]})
    assert granted == {
        ("logs:CreateLogStream", logs),
        ("logs:PutLogEvents", logs),
        ("secretsmanager:GetSecretValue", json.dumps({"Ref": "ConfirmationTokenSecret"})),
        ("dynamodb:GetItem", table),
        ("dynamodb:PutItem", table),
        ("dynamodb:UpdateItem", table),
    }


def test_only_the_operator_policy_may_query_and_only_the_indexes(template: Template) -> None:
    relay_actions = json.dumps(statements(template, "RelayFunctionRole"))
    assert "dynamodb:Query" not in relay_actions
    assert "dynamodb:Scan" not in relay_actions
    (statement,) = template.properties("ReconcileQueryPolicy")["PolicyDocument"]["Statement"]
    assert statement["Action"] == "dynamodb:Query"
    assert statement["Resource"] == {"Fn::Sub": "${IdempotencyTable.Arn}/index/*"}


def test_the_table_has_the_two_reconciliation_indexes(template: Template) -> None:
    table = template.properties("IdempotencyTable")
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    keys = {
        name: [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]]
        for name, index in indexes.items()
    }
    assert keys == {
        DELIVERED_INDEX: [("delivered_day", "HASH"), ("delivered_at", "RANGE")],
        CONFIRMATIONS_INDEX: [("received_day", "HASH"), ("received_at", "RANGE")],
    }
    assert set(indexes[DELIVERED_INDEX]["Projection"]["NonKeyAttributes"]) >= {"order_id", "confirmations"}
    assert set(indexes[CONFIRMATIONS_INDEX]["Projection"]["NonKeyAttributes"]) >= {
        "order_id",
        "conversion_id",
    }
    defined = {a["AttributeName"] for a in table["AttributeDefinitions"]}
    assert defined == {"id", "delivered_day", "delivered_at", "received_day", "received_at"}


def test_an_alarm_watches_the_urls_4xx_answers(template: Template) -> None:
    alarm = template.properties("ConfirmationsUrl4xxAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Url4xxCount")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ConfirmationsFunction"}}]
    assert alarm["TreatMissingData"] == "notBreaching"


def test_the_outputs_give_the_url_without_its_token_and_how_to_read_the_token(template: Template) -> None:
    outputs = template.document["Outputs"]
    assert outputs["ConfirmationsUrl"]["Value"] == {"Fn::GetAtt": ["ConfirmationsFunctionUrl", "FunctionUrl"]}
    command = template.resolve(outputs["ConfirmationTokenCommand"]["Value"], scope("true"))
    secret = SCOPE.refs["ConfirmationTokenSecret"]
    assert (
        command
        == f"aws secretsmanager get-secret-value --secret-id {secret} --query SecretString --output text"
    )
    assert outputs["ReconcileQueryPolicyArn"]["Value"] == {"Ref": "ReconcileQueryPolicy"}
