"""Static checks on template.yaml's event source and storage (CONTRACT §6, §8): the queues and their
dead-letter queue, the bus rule, the idempotency table and the function's role."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.template import (
    NEVER_FORWARDED,
    ORDER_NAMES,
    REFUND_NAMES,
    arn_of,
    as_list,
    envelope,
    forwarded,
    in_every_spelling,
    matches,
    props,
    ref,
    resolved,
    role_statements,
)

REFUNDS = {"off": {"EnableRefunds": "false"}, "on": {"EnableRefunds": "true"}}


# ----------------------------------------------------------------------------- queues


def test_visibility_timeout_is_six_times_the_function_timeout(template: dict[str, Any]) -> None:
    queue = props(template["Resources"], "OrderQueue")
    longest_timeout = template["Parameters"]["FunctionTimeout"]["MaxValue"]
    assert queue["VisibilityTimeout"] >= 6 * longest_timeout
    assert queue["VisibilityTimeout"] == 360


def test_order_queue_redrive_and_retention(resources: dict[str, Any]) -> None:
    queue = props(resources, "OrderQueue")
    assert queue["MessageRetentionPeriod"] == 4 * 24 * 3600
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == arn_of("OrderDeadLetterQueue")
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 12


def test_dead_letter_queue_retention_and_redrive_allow_policy(resources: dict[str, Any]) -> None:
    dlq = props(resources, "OrderDeadLetterQueue")
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    allow = dlq["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    (source,) = allow["sourceQueueArns"]
    # Spelled out by name (a GetAtt would be circular): it must name OrderQueue's QueueName.
    queue_name = props(resources, "OrderQueue")["QueueName"]["Fn::Sub"]
    assert source["Fn::Sub"].endswith(":" + queue_name)


@pytest.mark.parametrize("queue", ["OrderQueue", "OrderDeadLetterQueue"])
def test_queues_are_encrypted(resources: dict[str, Any], queue: str) -> None:
    p = props(resources, queue)
    assert p.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in p


@pytest.mark.parametrize(
    ("policy", "queue"),
    [("OrderQueuePolicy", "OrderQueue"), ("OrderDeadLetterQueuePolicy", "OrderDeadLetterQueue")],
)
def test_queue_policies_admit_only_the_rule(resources: dict[str, Any], policy: str, queue: str) -> None:
    p = props(resources, policy)
    assert p["Queues"] == [ref(queue)]
    allows = [s for s in p["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": allows[0]["Sid"],
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn_of(queue),
            "Condition": {"ArnEquals": {"aws:SourceArn": arn_of("OrderCompletedRule")}},
        }
    ]


# ----------------------------------------------------------------------------- rule


def test_the_rule_listens_on_the_order_events_bus_and_refunds_are_off_by_default(
    template: dict[str, Any],
) -> None:
    rule = props(template["Resources"], "OrderCompletedRule")
    assert rule["EventBusName"] == ref("OrderEventsBusName")
    assert template["Parameters"]["OrderEventsBusName"]["Default"] == "order-events"
    assert template["Parameters"]["EnableRefunds"]["Default"] == "false"
    assert template["Parameters"]["EnableRefunds"]["AllowedValues"] == ["false", "true"]
    assert template["Conditions"]["RefundsEnabled"] == {"Fn::Equals": [ref("EnableRefunds"), "true"]}
    # Unset, EnableRefunds deploys the rule exactly as "false" does
    assert resolved(template, rule["EventPattern"]) == resolved(
        template, rule["EventPattern"], **REFUNDS["off"]
    )


@pytest.mark.parametrize("refunds", sorted(REFUNDS))
def test_the_rule_forwards_order_completed_and_refunds_only_when_they_are_on(
    template: dict[str, Any], refunds: str
) -> None:
    # Given the rule as deployed with EnableRefunds off or on
    pattern = resolved(
        template, props(template["Resources"], "OrderCompletedRule")["EventPattern"], **REFUNDS[refunds]
    )
    assert set(pattern) == {"detail"}
    # Then Order Completed is forwarded either way, in any spelling
    for name in in_every_spelling(ORDER_NAMES):
        assert forwarded(pattern, name), name
    # ... refunds and cancellations only when refunds are on
    for name in in_every_spelling(REFUND_NAMES):
        assert forwarded(pattern, name) == (refunds == "on"), name
    # ... and nothing else, nor a page call named like an order
    for name in NEVER_FORWARDED:
        assert not forwarded(pattern, name), name
    assert not matches(pattern, envelope({"type": "page", "name": "Order Completed"}))


def test_rule_target_is_the_queue_with_a_dead_letter_queue(resources: dict[str, Any]) -> None:
    (target,) = props(resources, "OrderCompletedRule")["Targets"]
    assert target["Arn"] == arn_of("OrderQueue")
    assert target["DeadLetterConfig"] == {"Arn": arn_of("OrderDeadLetterQueue")}
    assert "RetryPolicy" in target
    assert "Input" not in target
    assert "InputPath" not in target
    assert "InputTransformer" not in target


# ----------------------------------------------------------------------------- table


def test_the_idempotency_table_expires_its_records_and_is_encrypted(resources: dict[str, Any]) -> None:
    table = props(resources, "IdempotencyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"][0] == {"AttributeName": "id", "AttributeType": "S"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


# ----------------------------------------------------------------------------- IAM


def test_function_uses_the_hand_written_role(resources: dict[str, Any]) -> None:
    p = props(resources, "RelayFunction")
    assert p["Role"] == arn_of("RelayFunctionRole")
    assert "Policies" not in p  # SAM ignores Policies when Role is set; keep the grants in one place
    role = props(resources, "RelayFunctionRole")
    assert "ManagedPolicyArns" not in role


def test_no_statement_grants_a_wildcard(resources: dict[str, Any]) -> None:
    for statement in role_statements(resources):
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            assert resource != "*", statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, statement


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("secretsmanager:GetSecretValue", ref("RefersionSecretArn")),
        ("dynamodb:GetItem", arn_of("IdempotencyTable")),
        ("dynamodb:PutItem", arn_of("IdempotencyTable")),
        ("dynamodb:UpdateItem", arn_of("IdempotencyTable")),
        ("dynamodb:DeleteItem", arn_of("IdempotencyTable")),
        ("sqs:SendMessage", arn_of("OrderDeadLetterQueue")),
        ("sqs:ChangeMessageVisibility", arn_of("OrderQueue")),
        ("sqs:ReceiveMessage", arn_of("OrderQueue")),
        ("sqs:DeleteMessage", arn_of("OrderQueue")),
        ("sqs:GetQueueAttributes", arn_of("OrderQueue")),
        ("logs:PutLogEvents", arn_of("RelayFunctionLogGroup")),
    ],
)
def test_each_action_is_granted_on_exactly_one_resource(
    resources: dict[str, Any], action: str, resource: Any
) -> None:
    granted = [
        r
        for s in role_statements(resources)
        if action in as_list(s["Action"])
        for r in as_list(s["Resource"])
    ]
    assert granted == [resource]


def test_role_grants_nothing_unexpected(resources: dict[str, Any]) -> None:
    actions = {a for s in role_statements(resources) for a in as_list(s["Action"])}
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "kms:Decrypt",  # only when RefersionSecretKmsKeyArn is set
    }


def test_the_smallest_allowed_function_timeout_fits_a_records_time_budget(template: dict[str, Any]) -> None:
    from handler.budget import minimum_function_timeout_seconds

    # Given the REFERSION_TIMEOUT_SECONDS the template deploys
    variables = props(template["Resources"], "RelayFunction")["Environment"]["Variables"]
    needed = minimum_function_timeout_seconds(float(variables["REFERSION_TIMEOUT_SECONDS"]))
    # Then FunctionTimeout cannot be set below what one record needs, and its range and default allow it
    timeout = template["Parameters"]["FunctionTimeout"]
    assert timeout["MinValue"] == needed
    assert timeout["MinValue"] <= timeout["Default"] <= timeout["MaxValue"]


def test_the_dead_letter_queue_takes_what_quarantine_may_send(resources: dict[str, Any]) -> None:
    from handler.quarantine import DLQ_MAX_MESSAGE_BYTES

    assert props(resources, "OrderDeadLetterQueue")["MaximumMessageSize"] == DLQ_MAX_MESSAGE_BYTES
