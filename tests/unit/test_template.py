"""Static checks on template.yaml and the invocation samples under events/.

They pin the deployment settings that matter (CONTRACT §8) so that a careless edit fails here
rather than in production. No AWS, no SAM CLI: the template is read with the project's YAML loader
for CloudFormation's short tags (local/cfn_yaml.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.template import (
    arn_of,
    forwarded,
    props,
    ref,
    resolved,
)

REFUNDS = {"off": {"EnableRefunds": "false"}, "on": {"EnableRefunds": "true"}}


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
