"""Static checks on template.yaml's alarms, dashboard and outputs (CONTRACT §7-§8): what an operator
is shown, and that every failure the relay counts has an alarm."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.template import (
    props,
    ref,
)

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
