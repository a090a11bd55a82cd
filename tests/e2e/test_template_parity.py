"""The local stack holds what template.yaml deploys: the settings are read back from moto with boto3 and
compared with the template, so the local topology cannot drift from the deployed one unnoticed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from local.stack import FAST_OVERRIDES, LocalStack
from local.template import TEMPLATE_PATH, load_document

pytestmark = pytest.mark.e2e

# Queue attributes moto 5.2.5 accepts but does not keep (nor return): they cannot be compared here.
MOTO_DROPS = {"RedriveAllowPolicy"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_document()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """One stack for the module: these tests only read what it holds."""
    with LocalStack() as running:
        yield running
    assert running.left_behind == []


def queue_attributes(stack: LocalStack, url: str) -> dict[str, str]:
    answer = stack.aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    attributes: dict[str, str] = answer["Attributes"]
    return attributes


def test_settings_are_read_from_the_template_itself(template: dict[str, Any]) -> None:
    # Given template.yaml, read with nothing but a YAML loader that ignores the short tags' meaning
    class Plain(yaml.SafeLoader):
        pass

    Plain.add_multi_constructor("!", lambda loader, suffix, node: {"tag": suffix})
    raw = yaml.load(TEMPLATE_PATH.read_text(), Loader=Plain)
    resources = raw["Resources"]
    queue = resources["OrderQueue"]["Properties"]
    source = resources["RelayFunction"]["Properties"]["Events"]["OrderQueue"]["Properties"]
    # When TemplateSettings is built
    from local.template import load_settings

    settings = load_settings()
    # Then it says what the file says
    assert settings.queue_visibility_timeout == queue["VisibilityTimeout"]
    assert settings.queue_message_retention == queue["MessageRetentionPeriod"]
    assert settings.max_receive_count == queue["RedrivePolicy"]["maxReceiveCount"]
    assert (
        settings.dlq_message_retention
        == resources["OrderDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
    )
    assert settings.batch_size == source["BatchSize"]
    assert settings.maximum_batching_window == source["MaximumBatchingWindowInSeconds"]
    assert settings.rule_event_pattern == resources["OrderCompletedRule"]["Properties"]["EventPattern"]
    assert settings.bus_name == raw["Parameters"]["OrderEventsBusName"]["Default"]
    assert settings.function_timeout == raw["Parameters"]["FunctionTimeout"]["Default"]
    assert settings.report_batch_item_failures


def test_queues_hold_the_templates_attributes(stack: LocalStack) -> None:
    # Given the running stack and what the template declares for both queues
    settings, resources = stack.settings, stack.resources
    scope_attributes = {"OrderDeadLetterQueue.Arn": resources.dlq_arn}
    # When moto's queues are read back
    queue = queue_attributes(stack, resources.queue_url)
    dlq = queue_attributes(stack, resources.dlq_url)
    # Then the settings that matter are the template's
    assert int(queue["VisibilityTimeout"]) == settings.queue_visibility_timeout
    assert int(queue["MessageRetentionPeriod"]) == settings.queue_message_retention
    redrive = json.loads(queue["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == settings.max_receive_count
    assert redrive["deadLetterTargetArn"] == resources.dlq_arn
    assert int(dlq["MessageRetentionPeriod"]) == settings.dlq_message_retention
    assert "RedrivePolicy" not in dlq
    # ... and so is every other queue property the template sets, as far as moto keeps it
    from local.template import Scope

    scope = Scope(stack_name=resources.stack_name, attributes=scope_attributes)
    for logical_id, held in (("OrderQueue", queue), ("OrderDeadLetterQueue", dlq)):
        for name, declared in stack.template.sqs_attributes(logical_id, scope).items():
            if name in MOTO_DROPS and name not in held:
                continue
            if name.endswith("Policy"):
                value, expected = json.loads(held[name]), json.loads(declared)
                if "maxReceiveCount" in value:  # SQS answers it as a string or a number
                    value["maxReceiveCount"] = int(value["maxReceiveCount"])
                assert value == expected, f"{logical_id}.{name}"
            else:
                assert held[name] == declared, f"{logical_id}.{name}"
    assert resources.queue_name == f"{resources.stack_name}-OrderQueue"
    assert resources.dlq_name == f"{resources.stack_name}-OrderDeadLetterQueue"


def test_rule_holds_the_templates_pattern_and_targets_the_queue(
    stack: LocalStack, template: dict[str, Any]
) -> None:
    # Given the running stack
    events = stack.aws.client("events")
    resources = stack.resources
    # When the rule and its targets are read back
    rule = events.describe_rule(Name=resources.rule_name, EventBusName=resources.bus_name)
    [target] = events.list_targets_by_rule(Rule=resources.rule_name, EventBusName=resources.bus_name)[
        "Targets"
    ]
    # Then they are the template's, on the template's bus
    assert json.loads(rule["EventPattern"]) == stack.settings.rule_event_pattern
    assert rule["State"] == stack.settings.rule_state
    assert resources.bus_name == stack.settings.bus_name
    declared = template["Resources"]["OrderCompletedRule"]["Properties"]["Targets"][0]
    assert target["Id"] == declared["Id"]
    assert target["Arn"] == resources.queue_arn
    assert target["DeadLetterConfig"] == {"Arn": resources.dlq_arn}
    assert target["RetryPolicy"] == declared["RetryPolicy"]


def test_idempotency_table_has_the_templates_key_and_ttl(stack: LocalStack, template: dict[str, Any]) -> None:
    dynamodb = stack.aws.client("dynamodb")
    declared = template["Resources"]["IdempotencyTable"]["Properties"]
    table = dynamodb.describe_table(TableName=stack.resources.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.resources.table_name)["TimeToLiveDescription"]
    assert table["KeySchema"] == declared["KeySchema"]
    assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
    assert ttl["AttributeName"] == declared["TimeToLiveSpecification"]["AttributeName"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_function_environment_is_the_templates_except_the_stated_overrides(stack: LocalStack) -> None:
    environment, resources, settings = stack.environment, stack.resources, stack.settings
    for name, value in settings.environment_defaults.items():
        if name == "REFERSION_ENDPOINT":
            assert environment[name] == stack.sandbox.url
        else:
            assert environment[name] == FAST_OVERRIDES.get(name, value), name
    assert environment["REFERSION_SECRET_ID"] == resources.secret_arn
    assert environment["DEAD_LETTER_QUEUE_URL"] == resources.dlq_url
    assert environment["SOURCE_QUEUE_URL"] == resources.queue_url
    assert environment["IDEMPOTENCY_TABLE_NAME"] == resources.table_name
    assert set(settings.environment_references) <= set(environment)


def test_event_source_mapping_is_configured_as_the_templates(
    stack: LocalStack, template: dict[str, Any]
) -> None:
    function = template["Resources"]["RelayFunction"]["Properties"]
    declared = function["Events"]["OrderQueue"]["Properties"]
    mapping = stack.mapping()
    assert mapping.queue_arn == stack.resources.queue_arn
    assert mapping.batch_size == declared["BatchSize"]
    assert mapping.batching_window_seconds == declared["MaximumBatchingWindowInSeconds"]
    assert mapping.report_batch_item_failures == (
        "ReportBatchItemFailures" in declared["FunctionResponseTypes"]
    )
    assert mapping.function_timeout_seconds == int(template["Parameters"]["FunctionTimeout"]["Default"])
    assert function["Timeout"] == {"Ref": "FunctionTimeout"}
    assert stack.settings.function_handler == function["Handler"] == "handler.app.lambda_handler"
