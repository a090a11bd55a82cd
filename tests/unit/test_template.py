"""Static checks on template.yaml and the invocation samples under events/.

They pin the deployment settings that matter (SPEC section 8) so that a careless edit fails here
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

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

ORDER_NAMES = ["Order Completed", "order_completed"]


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
        "POWERTOOLS_SERVICE_NAME": "refersion-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "RefersionRelay",
        "CONFIRMATION_WAIT_SECONDS": "600",
    }
    # SQS caps a message's visibility timeout at 12 hours.
    assert int(env["RETRY_MAX_DELAY_SECONDS"]) <= 43200


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


def test_snapstart_is_optional_and_republishes(template: dict[str, Any]) -> None:
    p = template["Resources"]["RelayFunction"]["Properties"]
    assert template["Parameters"]["EnableSnapStart"]["Default"] == "false"
    assert template["Conditions"]["SnapStartEnabled"] == {"Fn::Equals": [ref("EnableSnapStart"), "true"]}
    assert p["SnapStart"] == {"ApplyOn": {"Fn::If": ["SnapStartEnabled", "PublishedVersions", "None"]}}
    assert p["AutoPublishAlias"] == "live"
    # SAM does not resolve parameters when it decides whether to publish a version: every parameter
    # the function's configuration reads must appear in VersionDescription (see the template).
    config = {k: v for k, v in p.items() if k not in {"Events", "EventInvokeConfig", "VersionDescription"}}
    used = set(re.findall(r'\{"Ref": "([A-Za-z0-9]+)"\}', json.dumps(config)))
    used &= set(template["Parameters"])
    used |= {"EnableSnapStart"}
    text, switches = p["VersionDescription"]["Fn::Sub"]
    described = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text))
    if '"SnapStartEnabled"' in json.dumps(switches):  # the switches name a parameter by its condition
        described.add("EnableSnapStart")
    assert used <= described


def test_version_description_fits_in_256_characters(template: dict[str, Any]) -> None:
    text, switches = template["Resources"]["RelayFunction"]["Properties"]["VersionDescription"]["Fn::Sub"]
    text = text.replace("${Switches}", "x" * len(switches["Switches"]["Fn::Join"][1]))

    def longest(match: re.Match[str]) -> str:
        parameter = template["Parameters"][match.group(1)]
        if "AllowedValues" in parameter:
            return "x" * max(len(str(v)) for v in parameter["AllowedValues"])
        if parameter["Type"] == "Number":
            return "x" * len(str(parameter["MaxValue"]))
        return "x" * parameter["MaxLength"]

    assert len(re.sub(r"\$\{([A-Za-z0-9]+)\}", longest, text)) <= 256


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


def test_rule_forwards_only_order_completed(template: dict[str, Any]) -> None:
    rule = props(template["Resources"], "OrderCompletedRule")
    assert rule["EventBusName"] == ref("OrderEventsBusName")
    assert template["Parameters"]["OrderEventsBusName"]["Default"] == "order-events"
    pattern = rule["EventPattern"]
    assert set(pattern) == {"detail"}

    def envelope(detail: dict[str, Any]) -> dict[str, Any]:
        return {"source": "datafly.signal", "detail-type": "Order Completed", "detail": detail}

    for name in [*ORDER_NAMES, "ORDER COMPLETED", "order completed", "Order_Completed", "ORDER_COMPLETED"]:
        assert _matches(pattern, envelope({"type": "track", "event": name})), name
    for name in [
        "Order Refunded",
        "Product Viewed",
        "Order Completed ",
        "OrderCompleted",
        "Checkout Completed",
    ]:
        assert not _matches(pattern, envelope({"type": "track", "event": name})), name
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


def test_alarm_topic_is_optional_and_encrypted(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    for logical_id in ("AlarmTopic", "AlarmEmailSubscription", "AlarmTopicKey", "AlarmTopicPolicy"):
        assert resources[logical_id]["Condition"] == "HasAlarmEmail"
    assert props(resources, "AlarmTopic")["KmsMasterKeyId"] == ref("AlarmTopicKey")
    assert props(resources, "AlarmEmailSubscription")["Protocol"] == "email"


def test_dashboard_shows_the_outcome_metrics(template: dict[str, Any]) -> None:
    env = template["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]
    body_template = props(template["Resources"], "Dashboard")["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "1", body_template))
    metrics = [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]
    relay = [m for m in metrics if m[0] == env["POWERTOOLS_METRICS_NAMESPACE"]]
    assert {tuple(m[2:4]) for m in relay} == {("service", env["POWERTOOLS_SERVICE_NAME"])}
    names = {m[1] for m in relay}
    assert names == {
        "delivered",
        "retry",
        "rejected",
        "invalid",
        "dropped",
        "skipped",
        "duplicate",
        "delivery_latency",
    }
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
