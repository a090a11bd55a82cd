"""Static checks on template.yaml and the invocation samples under events/.

They pin the deployment settings that matter (CONTRACT §8) so that a careless edit fails here
rather than in production. No AWS, no SAM CLI: the template is read with the project's YAML loader
for CloudFormation's short tags (local/cfn_yaml.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.cfn_yaml import load_cfn_file
from local.template import Scope, Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

ORDER_NAMES = ["Order Completed", "order_completed"]
# CONTRACT §9: the names a refund or cancellation arrives under (any case, spaces or underscores).
REFUND_NAMES = [
    "Order Refunded",
    "order_refunded",
    "Order Cancelled",
    "order_cancelled",
    "Order Canceled",
    "order_canceled",
]
REFUNDS = {"off": {"EnableRefunds": "false"}, "on": {"EnableRefunds": "true"}}


# ----------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_cfn_file(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = resources[logical_id]["Properties"]
    return found


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def arn_of(logical_id: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resolved(template: dict[str, Any], value: Any, **parameters: str) -> Any:
    """The value as CloudFormation would deploy it with these parameters (local/template.py's resolver)."""
    return Template(template, TEMPLATE).resolve(value, Scope(parameters=parameters))


def role_statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the function role's inline policies, both branches of any Fn::If."""
    statements: list[dict[str, Any]] = []
    for policy in props(resources, "RelayFunctionRole")["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                branches = statement["Fn::If"][1:]
                statements.extend(b for b in branches if b != {"Ref": "AWS::NoValue"})
            else:
                statements.append(statement)
    return statements


# ----------------------------------------------------------------------------- function


def test_function_runtime_architecture_and_handler(resources: dict[str, Any]) -> None:
    function = resources["RelayFunction"]
    assert function["Type"] == "AWS::Serverless::Function"
    p = function["Properties"]
    assert p["Runtime"] == "python3.13"
    assert p["Architectures"] == ["arm64"]
    assert p["Handler"] == "handler.app.lambda_handler"
    assert p["CodeUri"] == "src/"


def test_function_memory_and_timeout_defaults(template: dict[str, Any]) -> None:
    p = template["Resources"]["RelayFunction"]["Properties"]
    params = template["Parameters"]
    assert p["MemorySize"] == ref("FunctionMemorySize")
    assert params["FunctionMemorySize"]["Default"] == 512
    assert p["Timeout"] == ref("FunctionTimeout")
    assert params["FunctionTimeout"]["Default"] == 60


def test_the_function_reads_its_settings_from_the_stack_parameters(template: dict[str, Any]) -> None:
    env = template["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]
    params = template["Parameters"]
    assert env["REFERSION_SECRET_ID"] == ref("RefersionSecretArn")
    assert "Default" not in params["RefersionSecretArn"], "the secret ARN must be supplied at deploy time"
    assert env["REFERSION_ENDPOINT"] == ref("RefersionEndpoint")
    assert (
        params["RefersionEndpoint"]["Default"] == "https://inbound-webhooks.refersion.com/tracker/orders/paid"
    )
    # Quarantine goes to the very queue that is OrderQueue's redrive target.
    assert env["DEAD_LETTER_QUEUE_URL"] == ref("OrderDeadLetterQueue")
    assert env["SOURCE_QUEUE_URL"] == ref("OrderQueue")
    assert env["IDEMPOTENCY_TABLE_NAME"] == ref("IdempotencyTable")
    assert env["POWERTOOLS_LOG_LEVEL"] == ref("LogLevel")
    assert params["LogLevel"]["Default"] == "INFO"
    assert {k: v for k, v in env.items() if isinstance(v, str)} == {
        "REFERSION_TIMEOUT_SECONDS": "10",
        "REFERSION_MAX_CONCURRENCY": "10",
        "CONSENT_CATEGORY": "marketing",
        "SECRET_CACHE_SECONDS": "300",
        "RETRY_BASE_DELAY_SECONDS": "30",
        "RETRY_MAX_DELAY_SECONDS": "3600",
        "REFUND_WAIT_MINUTES": "60",
        "ORDER_RECORD_DAYS": "400",
        "POWERTOOLS_SERVICE_NAME": "refersion-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "RefersionRelay",
        "CONFIRMATION_WAIT_SECONDS": "600",
    }
    # SQS caps a message's visibility timeout at 12 hours.
    assert int(env["RETRY_MAX_DELAY_SECONDS"]) <= 43200


@pytest.mark.parametrize("refunds", sorted(REFUNDS))
def test_the_function_is_told_whether_refunds_are_on_and_where_to_cancel(
    template: dict[str, Any], refunds: str
) -> None:
    # Given the function's environment as deployed with EnableRefunds off or on
    variables = props(template["Resources"], "RelayFunction")["Environment"]["Variables"]
    refund_variables = ["REFUNDS_ENABLED", "REFERSION_API_URL", "REFUND_WAIT_MINUTES", "ORDER_RECORD_DAYS"]
    env = {name: resolved(template, variables[name], **REFUNDS[refunds]) for name in refund_variables}
    # Then REFUNDS_ENABLED follows the parameter, and the rest is the same either way (the order state is
    # kept with refunds off too, so that turning them on later works for orders delivered before)
    assert env == {
        "REFUNDS_ENABLED": "true" if refunds == "on" else "false",
        "REFERSION_API_URL": "https://api.refersion.com/v2",
        "REFUND_WAIT_MINUTES": "60",
        "ORDER_RECORD_DAYS": "400",
    }
    assert variables["REFERSION_API_URL"] == ref("RefersionApiUrl")


def test_the_refersion_api_url_must_be_https_like_the_endpoint(template: dict[str, Any]) -> None:
    api, endpoint = template["Parameters"]["RefersionApiUrl"], template["Parameters"]["RefersionEndpoint"]
    assert api["AllowedPattern"] == endpoint["AllowedPattern"]
    assert allowed(api, api["Default"])
    assert allowed(api, "https://api.sandbox.refersion.com/v2")
    for refused in [
        "http://api.refersion.com/v2",
        "api.refersion.com/v2",
        "",
        "https://",
        "https://api refersion.com",
    ]:
        assert not allowed(api, refused), refused


def test_the_queue_feeds_batches_of_ten_with_partial_batch_responses(template: dict[str, Any]) -> None:
    events = template["Resources"]["RelayFunction"]["Properties"]["Events"]
    sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert len(sqs) == 1
    source = sqs[0]
    assert source["Queue"] == arn_of("OrderQueue")
    assert source["BatchSize"] == 10
    assert source["MaximumBatchingWindowInSeconds"] == 1
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"]["MaximumConcurrency"] == ref("QueueMaximumConcurrency")
    assert template["Parameters"]["QueueMaximumConcurrency"]["Default"] == 5


def test_event_invoke_config_for_direct_eventbridge_path(resources: dict[str, Any]) -> None:
    config = props(resources, "RelayFunction")["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SQS", "Destination": arn_of("OrderDeadLetterQueue")}


def test_log_group_has_retention_and_is_used(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["RelayFunctionLogGroup"]["Type"] == "AWS::Logs::LogGroup"
    assert props(resources, "RelayFunctionLogGroup")["RetentionInDays"] == ref("LogRetentionDays")
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30
    assert props(resources, "RelayFunction")["LoggingConfig"]["LogGroup"] == ref("RelayFunctionLogGroup")


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:refersion/keys-AbC123"
# Another value for each parameter the function's configuration reads (a new secret of the same name
# gets a new 6-character suffix).
OTHER_VALUES = {
    "FunctionMemorySize": "1024",
    "FunctionTimeout": "55",
    "LogLevel": "DEBUG",
    "EnableSnapStart": "true",
    "EnableRefunds": "true",
    "EnableConfirmations": "true",
    "RefersionEndpoint": "https://webhooks.example.com/paid",
    "RefersionApiUrl": "https://api.example.com/v2",
    "RefersionSecretArn": SECRET_ARN.replace("-AbC123", "-XyZ789"),
}


def allowed(parameter: dict[str, Any], value: str) -> bool:
    """Whether CloudFormation would accept the value for the parameter (the constraints the template uses)."""
    if "AllowedValues" in parameter and value not in [str(v) for v in parameter["AllowedValues"]]:
        return False
    if parameter["Type"] == "Number":
        return bool(
            parameter.get("MinValue", float("-inf"))
            <= float(value)
            <= parameter.get("MaxValue", float("inf"))
        )
    if "AllowedPattern" in parameter and not re.fullmatch(parameter["AllowedPattern"], value):
        return False
    max_length: int = parameter.get("MaxLength", len(value))  # the template's YAML: Any
    return len(value) <= max_length


def parameters_read_by_the_function(template: dict[str, Any]) -> set[str]:
    """Parameters the function's configuration refers to, directly or through a condition of an Fn::If."""
    p = template["Resources"]["RelayFunction"]["Properties"]
    config = json.dumps(
        {k: v for k, v in p.items() if k not in {"Events", "EventInvokeConfig", "VersionDescription"}}
    )
    used = set(re.findall(r'\{"Ref": "([A-Za-z0-9]+)"\}', config))
    conditions = set(re.findall(r'\{"Fn::If": \["([A-Za-z0-9]+)"', config))
    while conditions:
        condition = json.dumps(template["Conditions"][conditions.pop()])
        used |= set(re.findall(r'\{"Ref": "([A-Za-z0-9]+)"\}', condition))
        conditions |= set(re.findall(r'\{"Condition": "([A-Za-z0-9]+)"\}', condition))
    return used & set(template["Parameters"])


def version_description(template: dict[str, Any], **parameters: str) -> str:
    p = template["Resources"]["RelayFunction"]["Properties"]
    return str(
        resolved(template, p["VersionDescription"], **{"RefersionSecretArn": SECRET_ARN, **parameters})
    )


def test_snapstart_is_optional(template: dict[str, Any]) -> None:
    p = template["Resources"]["RelayFunction"]["Properties"]
    assert template["Parameters"]["EnableSnapStart"]["Default"] == "false"
    assert template["Conditions"]["SnapStartEnabled"] == {"Fn::Equals": [ref("EnableSnapStart"), "true"]}
    assert p["SnapStart"] == {"ApplyOn": {"Fn::If": ["SnapStartEnabled", "PublishedVersions", "None"]}}
    assert p["AutoPublishAlias"] == "live"


def test_a_change_of_any_parameter_the_function_reads_publishes_a_new_version(
    template: dict[str, Any],
) -> None:
    # SAM does not resolve parameters when it decides whether to publish a version: the template makes
    # VersionDescription change with every parameter the function's configuration reads.
    # Given the parameters the configuration reads, directly or through a condition
    used = parameters_read_by_the_function(template)
    assert {"EnableSnapStart", "EnableRefunds", "EnableConfirmations", "RefersionApiUrl"} <= used
    assert "RefersionSecretArn" in used
    assert used <= set(OTHER_VALUES), "give the new parameter another value in OTHER_VALUES"
    before = version_description(template)
    for name in sorted(used):
        assert allowed(template["Parameters"][name], OTHER_VALUES[name]), name
        # When only that parameter changes
        after = version_description(template, **{name: OTHER_VALUES[name]})
        # Then the version's description changes, and with it the published version
        assert after != before, name


def longest_allowed(name: str, parameter: dict[str, Any]) -> str:
    """The longest value the parameter admits, of the kind that makes VersionDescription longest."""
    if "AllowedValues" in parameter:
        return max((str(v) for v in parameter["AllowedValues"]), key=len)
    if parameter["Type"] == "Number":
        return str(parameter["MaxValue"])
    max_length: int  # the template's YAML: Any
    if name == "RefersionSecretArn":
        max_length = parameter["MaxLength"]
        # The description holds what follows "secret:": longest when the rest of the ARN is shortest.
        head, suffix = "arn:aws:secretsmanager:a:123456789012:secret:", "-AbC123"
        return head + "n" * (max_length - len(head) - len(suffix)) + suffix
    assert parameter["AllowedPattern"] == "^https://[^\\s]+$", name
    max_length = parameter["MaxLength"]
    return "https://" + "x" * (max_length - len("https://"))


def test_version_description_fits_in_256_characters_whatever_the_parameters(template: dict[str, Any]) -> None:
    # Given the longest value each parameter the description holds admits
    text = json.dumps(template["Resources"]["RelayFunction"]["Properties"]["VersionDescription"])
    described = {name for name in re.findall(r"[A-Za-z0-9]+", text) if name in template["Parameters"]}
    longest = {name: longest_allowed(name, template["Parameters"][name]) for name in described}
    for name, value in longest.items():
        assert allowed(template["Parameters"][name], value), name
    # When the description is resolved with them
    description = version_description(template, **longest)
    # Then Lambda's 256-character limit holds (and is nearly used: the maxima were chosen for it)
    assert 240 <= len(description) <= 256, description


def test_make_template_lints_a_copy_that_differs_only_in_the_enable_refunds_default(
    template: dict[str, Any], tmp_path: Path
) -> None:
    from local.template_variant import main

    # When make template writes its EnableRefunds=true copy
    copy_path = tmp_path / "template-refunds.json"
    assert main(["--default", "EnableRefunds=true", "--output", str(copy_path)]) == 0
    variant = json.loads(copy_path.read_text())
    # Then the copy is the template but for that one default, so its rule as linted forwards refunds
    expected = json.loads(json.dumps(template))
    assert expected["Parameters"]["EnableRefunds"]["Default"] == "false"
    expected["Parameters"]["EnableRefunds"]["Default"] = "true"
    assert variant == expected
    assert forwarded(
        resolved(variant, props(variant["Resources"], "OrderCompletedRule")["EventPattern"]), "Order Refunded"
    )
    # ... and a value the parameter does not allow is refused rather than linted
    with pytest.raises(ValueError, match="EnableRefunds"):
        main(["--default", "EnableRefunds=yes", "--output", str(copy_path)])


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


def _matches(pattern: Any, event: Any) -> bool:
    """The subset of EventBridge matching the rule uses: nested keys, value lists, equals-ignore-case."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(
            key in event and _matches(sub, event[key]) for key, sub in pattern.items()
        )
    for candidate in pattern:
        if isinstance(candidate, dict):
            ((operator, operand),) = candidate.items()
            assert operator == "equals-ignore-case", f"unexpected operator {operator}"
            if isinstance(event, str) and event.casefold() == operand.casefold():
                return True
        elif candidate == event:
            return True
    return False


def envelope(detail: dict[str, Any]) -> dict[str, Any]:
    return {"source": "datafly.signal", "detail-type": str(detail.get("event")), "detail": detail}


def forwarded(pattern: Any, name: str) -> bool:
    return _matches(pattern, envelope({"type": "track", "event": name}))


def in_every_spelling(names: list[str]) -> list[str]:
    """Each name in any letter case, with spaces or underscores (CONTRACT §2 and §9)."""
    spellings: list[str] = []
    for name in names:
        spaced = name.replace("_", " ")
        for text in (spaced, spaced.replace(" ", "_")):
            spellings += [text, text.upper(), text.lower(), text.title()]
    return spellings


NEVER_FORWARDED = [
    "Product Viewed",
    "Order Completed ",
    "OrderCompleted",
    "Checkout Completed",
    "Order Refund",
    "OrderRefunded",
    "Order Refunded ",
    "Refund Processed",
    "Order Updated",
    "Order Returned",
    "Order Cancel",
]


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
    assert not _matches(pattern, envelope({"type": "page", "name": "Order Completed"}))


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


# ----------------------------------------------------------------------------- alarms and dashboard

ALARMS = {
    "DeadLetterQueueAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "OrderDeadLetterQueue"),
    "FunctionErrorsAlarm": ("AWS/Lambda", "Errors", "RelayFunction"),
    "FunctionThrottlesAlarm": ("AWS/Lambda", "Throttles", "RelayFunction"),
    "OrderQueueAgeAlarm": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "OrderQueue"),
    "RetriesAlarm": ("RefersionRelay", "retry", "refersion-relay"),
    # Issue 13: a throttled or failing AWS dependency is seen before its orders reach the DLQ.
    "SecretsManagerErrorsAlarm": ("RefersionRelay", "aws_secretsmanager_error", "refersion-relay"),
    "DynamoDBErrorsAlarm": ("RefersionRelay", "aws_dynamodb_error", "refersion-relay"),
    "SqsErrorsAlarm": ("RefersionRelay", "aws_sqs_error", "refersion-relay"),
    "DeliveredNotRecordedAlarm": ("RefersionRelay", "delivered_not_recorded", "refersion-relay"),
}


def test_every_alarm_exists(resources: dict[str, Any]) -> None:
    alarms = {
        k
        for k, v in resources.items()
        if v["Type"] == "AWS::CloudWatch::Alarm" and "Condition" not in v  # optional ones: their own tests
    }
    assert alarms == set(ALARMS)


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_alarm_watches_the_right_metric(template: dict[str, Any], alarm: str) -> None:
    namespace, metric, subject = ALARMS[alarm]
    p = props(template["Resources"], alarm)
    assert (p["Namespace"], p["MetricName"]) == (namespace, metric)
    (dimension,) = p["Dimensions"]
    assert subject in json.dumps(dimension["Value"])
    assert p["ComparisonOperator"] == "GreaterThanThreshold"
    if alarm == "OrderQueueAgeAlarm":
        assert p["Threshold"] == ref("QueueAgeAlarmThresholdSeconds")
        assert template["Parameters"]["QueueAgeAlarmThresholdSeconds"]["Default"] == 900
    else:
        assert p["Threshold"] == 0
    notify = {"Fn::If": ["HasAlarmEmail", [ref("AlarmTopic")], ref("AWS::NoValue")]}
    assert p["AlarmActions"] == notify
    assert p["OKActions"] == notify


def test_each_dependency_failure_metric_the_relay_counts_has_an_alarm(template: dict[str, Any]) -> None:
    from handler import observability

    # Given the metric names the relay emits for failed AWS calls (handler.observability)
    dependencies = (observability.SECRETS_MANAGER, observability.DYNAMODB, observability.SQS)
    emitted = {f"aws_{dependency}_error" for dependency in dependencies} | {
        observability.DELIVERED_NOT_RECORDED
    }
    env = template["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]
    # When the template's alarms are read
    watched = {
        props(template["Resources"], alarm)["MetricName"]: props(template["Resources"], alarm)
        for alarm in ALARMS
    }
    # Then every one of them is watched in the relay's namespace and service, and pages within minutes
    for name in emitted:
        alarm = watched[name]
        assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
        assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
        assert alarm["Statistic"] == "Sum"
        assert alarm["Period"] * alarm["EvaluationPeriods"] <= 600
    # And the not-recorded delivery pages on its first count
    assert watched[observability.DELIVERED_NOT_RECORDED]["EvaluationPeriods"] == 1


def test_every_alarm_is_on_the_dashboard(template: dict[str, Any]) -> None:
    # Given the dashboard's alarm widget
    [widget] = [w for w in dashboard_widgets(template) if w["type"] == "alarm"]
    body = props(template["Resources"], "Dashboard")["DashboardBody"]["Fn::Sub"]
    # Then it lists every unconditional alarm (the optional ones exist only in some stacks)
    listed = set(re.findall(r"\$\{([A-Za-z0-9]+)\.Arn\}", body))
    assert set(ALARMS) <= listed
    assert len(widget["properties"]["alarms"]) == len(ALARMS)


def test_alarm_topic_is_optional_and_encrypted(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    for logical_id in ("AlarmTopic", "AlarmEmailSubscription", "AlarmTopicKey", "AlarmTopicPolicy"):
        assert resources[logical_id]["Condition"] == "HasAlarmEmail"
    assert props(resources, "AlarmTopic")["KmsMasterKeyId"] == ref("AlarmTopicKey")
    assert props(resources, "AlarmEmailSubscription")["Protocol"] == "email"


OUTCOME_METRICS = {"delivered", "retry", "waiting", "rejected", "invalid", "dropped", "skipped", "duplicate"}
# CONTRACT §9: refunds are counted under names of their own; Refersion's "no conversion" apart.
REFUND_METRICS = {
    "refund_delivered",
    "refund_retry",
    "refund_waiting",
    "refund_skipped",
    "refund_skipped_no_conversion",
    "refund_invalid",
    "refund_rejected",
    "refund_duplicate",
}

DEPENDENCY_METRICS = {
    "aws_secretsmanager_error",
    "aws_dynamodb_error",
    "aws_sqs_error",
    "delivered_not_recorded",
}


def dashboard_widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    body_template = props(template["Resources"], "Dashboard")["DashboardBody"]["Fn::Sub"]
    widgets: list[dict[str, Any]] = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "1", body_template))["widgets"]
    return widgets


def test_dashboard_shows_the_outcome_metrics(template: dict[str, Any]) -> None:
    env = template["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]
    widgets = dashboard_widgets(template)
    metrics = [m for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]]
    relay = [m for m in metrics if m[0] == env["POWERTOOLS_METRICS_NAMESPACE"]]
    assert {tuple(m[2:4]) for m in relay} == {("service", env["POWERTOOLS_SERVICE_NAME"])}
    names = {m[1] for m in relay}
    assert names == OUTCOME_METRICS | REFUND_METRICS | DEPENDENCY_METRICS | {"delivery_latency"}
    latency_stats = {m[4]["stat"] for m in relay if m[1] == "delivery_latency"}
    assert latency_stats == {"p50", "p99"}
    aws_metrics = {(m[0], m[1]) for m in metrics if m[0].startswith("AWS/")}
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "Duration"),
    } <= aws_metrics


def test_refunds_have_a_widget_of_their_own_whether_they_are_on_or_not(template: dict[str, Any]) -> None:
    # Given the dashboard's widgets (the dashboard has no Condition: it is the same with refunds off)
    assert "Condition" not in template["Resources"]["Dashboard"]
    by_title = {w["properties"]["title"]: w for w in dashboard_widgets(template) if w["type"] == "metric"}
    # Then one widget shows every refund metric and nothing else, and the outcomes widget none of them
    [refunds] = [w for title, w in by_title.items() if title.startswith("Refunds")]
    assert {m[1] for m in refunds["properties"]["metrics"]} == REFUND_METRICS
    outcomes = by_title["Outcomes per 5 minutes"]
    assert {m[1] for m in outcomes["properties"]["metrics"]} == OUTCOME_METRICS


def test_no_alarm_fires_on_a_normal_wait(resources: dict[str, Any]) -> None:
    # Waiting is reported for redelivery like a retry, but must not page anyone (CONTRACT §9)
    watched = {props(resources, a)["MetricName"] for a in ALARMS}
    assert watched.isdisjoint({"waiting", "refund_waiting", "refund_skipped_no_conversion"})
    assert "retry" in watched


def test_the_stack_outputs_name_what_an_operator_needs(template: dict[str, Any]) -> None:
    assert {
        "OrderQueueUrl",
        "OrderQueueArn",
        "OrderDeadLetterQueueUrl",
        "OrderDeadLetterQueueArn",
        "RelayFunctionName",
        "RelayFunctionArn",
        "IdempotencyTableName",
        "DashboardName",
    } <= set(template["Outputs"])


# ----------------------------------------------------------------------------- events/

EVENT_FILES = sorted(EVENTS.rglob("*.json"))
SQS_FILES = sorted(EVENTS.glob("sqs-*.json"))
SEED_PROPERTIES = {
    "cart_id": "DDXqfBngTWuX8N8Asqr2mY3RkmHCXdM7Vz6mdHkjwrEnN5zyRY",
    "order_id": "20150401102883",
    "currency": "USD",
    "shipping": 9.99,
    "tax": 0.57,
    "discount": 2.25,
    "coupon": "HOLIDAY1",
    "products": [{"sku": "PROD_A", "name": "Product A", "price": 5.50, "quantity": 2}],
}


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_event_samples_exist() -> None:
    names = {p.relative_to(EVENTS).as_posix() for p in EVENT_FILES}
    assert {
        "sqs-eventbridge-order.json",
        "sqs-datafly-order.json",
        "sqs-mixed-batch.json",
        "eventbridge-order.json",
        "datafly/seed-order.json",
        "datafly/page-view.json",
        "datafly/invalid-order.json",
        "datafly/second-order.json",
    } <= names
    assert [p for p in EVENTS.rglob("*") if p.is_file() and p.suffix != ".json"] == []


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.relative_to(EVENTS).as_posix())
def test_every_event_sample_is_a_json_object(path: Path) -> None:
    assert isinstance(load(path), dict)


@pytest.mark.parametrize("path", SQS_FILES, ids=lambda p: p.name)
def test_the_sqs_samples_look_like_what_lambda_sends(path: Path) -> None:
    records = load(path)["Records"]
    assert 1 <= len(records) <= 10
    assert len({r["messageId"] for r in records}) == len(records)
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].startswith("arn:aws:sqs:")
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        if record["body"] == "not json":  # the deliberate invalid record of the mixed batch
            assert path.name == "sqs-mixed-batch.json"
            continue
        body = json.loads(record["body"])
        assert isinstance(body, dict)
        if "detail" in body:
            assert isinstance(body["detail"], dict)


def test_seed_samples_carry_the_seed_order() -> None:
    seed = load(EVENTS / "datafly" / "seed-order.json")
    assert seed["type"] == "track"
    assert seed["event"] == "Order Completed"
    assert seed["properties"] == SEED_PROPERTIES
    assert seed["context"]["ip"] == "234.192.4.75"
    assert seed["context"]["traits"] == {"email": "jdoe@domain.com", "first_name": "John", "last_name": "Doe"}

    assert load(EVENTS / "eventbridge-order.json")["detail"] == seed
    (eb_record,) = load(EVENTS / "sqs-eventbridge-order.json")["Records"]
    assert json.loads(eb_record["body"])["detail"] == seed
    (direct_record,) = load(EVENTS / "sqs-datafly-order.json")["Records"]
    assert json.loads(direct_record["body"]) == seed


def test_the_mixed_batch_holds_an_order_a_page_view_an_invalid_order_and_not_json() -> None:
    records = load(EVENTS / "sqs-mixed-batch.json")["Records"]
    bodies = [r["body"] for r in records]
    assert len(bodies) == 4
    assert json.loads(bodies[0])["detail"] == load(EVENTS / "datafly" / "seed-order.json")
    assert json.loads(bodies[1]) == load(EVENTS / "datafly" / "page-view.json")
    assert json.loads(bodies[2])["detail"] == load(EVENTS / "datafly" / "invalid-order.json")
    assert bodies[3] == "not json"


def test_the_datafly_samples_are_what_their_names_say() -> None:
    page = load(EVENTS / "datafly" / "page-view.json")
    assert page["type"] == "page"
    invalid = load(EVENTS / "datafly" / "invalid-order.json")
    assert invalid["event"] in ORDER_NAMES
    assert "cart_id" not in invalid["properties"]
    assert invalid["properties"]["products"][0]["price"] == "$5.50"
    second = load(EVENTS / "datafly" / "second-order.json")
    assert second["event"].casefold() in {n.casefold() for n in ORDER_NAMES}
    assert second["properties"]["order_id"] != SEED_PROPERTIES["order_id"]
    assert second["properties"]["cart_id"] != SEED_PROPERTIES["cart_id"]
    assert len(second["properties"]["products"]) == 2
    assert isinstance(second["properties"]["coupon"], list)
    assert "items" not in second["properties"]


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
