"""The local stack holds what template.yaml deploys: the settings are read back from moto with boto3 and
compared with the template, so the local topology cannot drift from the deployed one unnoticed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from local.aws import drain_queue
from local.stack import FAST_OVERRIDES, SANDBOX_API_PATH, LocalStack
from local.template import TEMPLATE_PATH, Scope, load_document

pytestmark = pytest.mark.e2e

# Queue attributes moto 5.2.5 accepts but does not keep (nor return): they cannot be compared here.
MOTO_DROPS = {"RedriveAllowPolicy"}
REFUND_NAMES = ["Order Refunded", "order_refunded", "Order Cancelled", "ORDER_CANCELLED", "order canceled"]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_document()


@pytest.fixture(scope="module", params=["false", "true"], ids=["refunds-off", "refunds-on"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """One stack per EnableRefunds value (the default first): these tests only read what it holds, or
    take back what they put on its queue."""
    with LocalStack(parameters={"EnableRefunds": request.param}) as running:
        yield running
    assert running.left_behind == []


def refunds_on(request: pytest.FixtureRequest) -> bool:
    """Whether this test's stack was started with EnableRefunds=true (its fixture parameter)."""
    return bool(request.node.callspec.params["stack"] == "true")


def queue_attributes(stack: LocalStack, url: str) -> dict[str, str]:
    answer = stack.aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    attributes: dict[str, str] = answer["Attributes"]
    return attributes


def test_settings_are_read_from_the_template_itself(template: dict[str, Any]) -> None:
    # Given template.yaml, read with nothing but a YAML loader that ignores the short tags' meaning
    class Plain(yaml.SafeLoader):
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.SequenceNode):
            return {"tag": suffix, "value": loader.construct_sequence(node, deep=True)}
        return {"tag": suffix}

    Plain.add_multi_constructor("!", tagged)
    raw = yaml.load(TEMPLATE_PATH.read_text(), Loader=Plain)
    resources = raw["Resources"]
    queue = resources["OrderQueue"]["Properties"]
    source = resources["RelayFunction"]["Properties"]["Events"]["OrderQueue"]["Properties"]
    # When TemplateSettings is built
    from local.template import load_settings, load_template

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
    # ... the rule's event names being the !If's second branch unless EnableRefunds is "true"
    names = resources["OrderCompletedRule"]["Properties"]["EventPattern"]["detail"]["event"]
    assert names["tag"] == "If"
    condition, when_on, when_off = names["value"]
    assert raw["Conditions"]["RefundsEnabled"]["tag"] == "Equals"
    assert settings.rule_event_pattern == {"detail": {"event": when_off}}
    assert load_template().settings({"EnableRefunds": "true"}).rule_event_pattern == {
        "detail": {"event": when_on}
    }
    assert condition == "RefundsEnabled"
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
    stack: LocalStack, template: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    # Given the running stack
    events = stack.aws.client("events")
    resources = stack.resources
    # When the rule and its targets are read back
    rule = events.describe_rule(Name=resources.rule_name, EventBusName=resources.bus_name)
    [target] = events.list_targets_by_rule(Rule=resources.rule_name, EventBusName=resources.bus_name)[
        "Targets"
    ]
    # Then they are the template's with the stack's EnableRefunds, on the template's bus
    declared_pattern = template["Resources"]["OrderCompletedRule"]["Properties"]["EventPattern"]
    scope = Scope(parameters={"EnableRefunds": "true" if refunds_on(request) else "false"})
    assert json.loads(rule["EventPattern"]) == stack.template.resolve(declared_pattern, scope)
    assert json.loads(rule["EventPattern"]) == stack.settings.rule_event_pattern
    names = {entry["equals-ignore-case"] for entry in json.loads(rule["EventPattern"])["detail"]["event"]}
    assert ("Order Refunded" in names) == refunds_on(request)
    assert rule["State"] == stack.settings.rule_state
    assert resources.bus_name == stack.settings.bus_name
    declared = template["Resources"]["OrderCompletedRule"]["Properties"]["Targets"][0]
    assert target["Id"] == declared["Id"]
    assert target["Arn"] == resources.queue_arn
    assert target["DeadLetterConfig"] == {"Arn": resources.dlq_arn}
    assert target["RetryPolicy"] == declared["RetryPolicy"]


def test_the_rule_puts_refunds_on_the_queue_only_when_they_are_on(
    stack: LocalStack, request: pytest.FixtureRequest
) -> None:
    # Given the running stack, its queue empty
    assert drain_queue(stack.aws, stack.resources.queue_url) == []
    # When Datafly publishes refunds and cancellations, a page view, then an order last
    refunds = [
        {"type": "track", "event": name, "properties": {"order_id": f"R-{i}"}}
        for i, name in enumerate(REFUND_NAMES)
    ]
    page = {"type": "page", "name": "Order Refunded", "properties": {"order_id": "P-1"}}
    order = {"type": "track", "event": "Order Completed", "properties": {"order_id": "O-1"}}
    stack.publish_all([*refunds, page, order])
    # Then (the order having arrived) the queue holds the refunds too exactly when refunds are on
    arrived: list[str] = []
    deadline = time.monotonic() + 10
    while "O-1" not in arrived and time.monotonic() < deadline:
        messages = drain_queue(stack.aws, stack.resources.queue_url, wait_seconds=1)
        arrived += [json.loads(m["Body"])["detail"]["properties"]["order_id"] for m in messages]
    arrived += [
        json.loads(m["Body"])["detail"]["properties"]["order_id"]
        for m in drain_queue(stack.aws, stack.resources.queue_url)
    ]
    expected_refunds = [f"R-{i}" for i in range(len(REFUND_NAMES))] if refunds_on(request) else []
    assert sorted(arrived) == sorted(["O-1", *expected_refunds])
    assert drain_queue(stack.aws, stack.resources.dlq_url) == []


def test_idempotency_table_has_the_templates_key_and_ttl(stack: LocalStack, template: dict[str, Any]) -> None:
    dynamodb = stack.aws.client("dynamodb")
    declared = template["Resources"]["IdempotencyTable"]["Properties"]
    table = dynamodb.describe_table(TableName=stack.resources.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.resources.table_name)["TimeToLiveDescription"]
    assert table["KeySchema"] == declared["KeySchema"]
    assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
    assert ttl["AttributeName"] == declared["TimeToLiveSpecification"]["AttributeName"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_function_environment_is_the_templates_except_the_stated_overrides(
    stack: LocalStack, request: pytest.FixtureRequest
) -> None:
    environment, resources, settings = stack.environment, stack.resources, stack.settings
    for name, value in settings.environment_defaults.items():
        if name == "REFERSION_ENDPOINT":
            assert environment[name] == stack.sandbox.url
        elif name == "REFERSION_API_URL":  # a local refund never reaches Refersion either
            assert environment[name] == stack.sandbox.base_url + SANDBOX_API_PATH
        else:
            assert environment[name] == FAST_OVERRIDES.get(name, value), name
    assert environment["REFERSION_SECRET_ID"] == resources.secret_arn
    assert environment["DEAD_LETTER_QUEUE_URL"] == resources.dlq_url
    assert environment["SOURCE_QUEUE_URL"] == resources.queue_url
    assert environment["IDEMPOTENCY_TABLE_NAME"] == resources.table_name
    assert set(settings.environment_references) <= set(environment)
    # ... EnableRefunds included: the relay is told whether refunds are on
    assert environment["REFUNDS_ENABLED"] == ("true" if refunds_on(request) else "false")


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
