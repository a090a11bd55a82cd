"""template.yaml read the way CloudFormation reads it: the one place the local stack takes its settings from.

The local stack (local/stack.py) and the SQS poller (local/poller.py) never spell a queue
setting, a rule pattern or a batch size themselves: they ask this module, which reads template.yaml.
A change to the template therefore changes the local topology too, and tests/e2e/test_template_parity.py
checks what moto actually holds against what the template says.

Intrinsic functions are resolved against a `Scope` (parameter values, the physical ids and attributes
of resources that exist locally, pseudo parameters). What cannot be resolved raises `Unresolved`
rather than being guessed.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final

from local.cfn_yaml import CfnLoader, load_cfn_file

__all__ = ["CfnLoader", "Scope", "Template", "TemplateSettings", "Unresolved", "load_document"]

TEMPLATE_PATH: Final = Path(__file__).resolve().parents[1] / "template.yaml"

# Logical ids and names the project fixes (the template may be edited, these may not).
FUNCTION: Final = "RelayFunction"
QUEUE: Final = "OrderQueue"
DEAD_LETTER_QUEUE: Final = "OrderDeadLetterQueue"
RULE: Final = "OrderCompletedRule"
TABLE: Final = "IdempotencyTable"
BUS_PARAMETER: Final = "OrderEventsBusName"

# CloudFormation's AWS::SQS::Queue properties that are SQS queue attributes of the same name.
_SQS_ATTRIBUTE_PROPERTIES: Final = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")


class Unresolved(LookupError):
    """An intrinsic function refers to something the scope does not provide."""


# --------------------------------------------------------------------------- loading


def load_document(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as CloudFormation reads it (short tags in their long forms; local/cfn_yaml.py)."""
    return load_cfn_file(path)


# --------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class Scope:
    """What intrinsic functions resolve against. Parameters not given here take their template default."""

    parameters: Mapping[str, str] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)  # logical id -> what Ref returns
    attributes: Mapping[str, str] = field(default_factory=dict)  # "LogicalId.Attribute" -> value
    stack_name: str = "refersion-relay"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    partition: str = "aws"

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
        }


class _NoValue:
    """AWS::NoValue: the property (or list item) is removed."""


_NO_VALUE: Final = _NoValue()


class Template:
    """A loaded template and the few CloudFormation semantics the local stack needs."""

    def __init__(self, document: Mapping[str, Any], path: Path = TEMPLATE_PATH) -> None:
        self.document = document
        self.path = path

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH) -> Template:
        return cls(load_document(path), path)

    # ------------------------------------------------------------ sections

    def resource(self, logical_id: str) -> dict[str, Any]:
        resources: dict[str, Any] = self.document.get("Resources") or {}
        if logical_id not in resources:
            raise KeyError(f"{self.path.name}: no resource {logical_id!r}")
        found: dict[str, Any] = resources[logical_id]
        return found

    def properties(self, logical_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.resource(logical_id).get("Properties") or {}
        return found

    def parameter_default(self, name: str) -> str | None:
        parameters: dict[str, Any] = self.document.get("Parameters") or {}
        if name not in parameters:
            raise KeyError(f"{self.path.name}: no parameter {name!r}")
        default = parameters[name].get("Default")
        return None if default is None else _scalar_text(default)

    def function_property(self, logical_id: str, name: str) -> Any:
        """A function property, falling back to Globals.Function as SAM does."""
        own = self.properties(logical_id)
        if name in own:
            return own[name]
        globals_ = (self.document.get("Globals") or {}).get("Function") or {}
        return globals_.get(name)

    def function_variables(self, logical_id: str) -> dict[str, Any]:
        """Environment.Variables, Globals' first and the function's over them (SAM's merge), unresolved."""
        globals_ = (self.document.get("Globals") or {}).get("Function") or {}
        merged: dict[str, Any] = dict(((globals_.get("Environment") or {}).get("Variables")) or {})
        merged.update(((self.properties(logical_id).get("Environment") or {}).get("Variables")) or {})
        return merged

    def sqs_event_source(self, function_id: str, queue_id: str) -> dict[str, Any]:
        """Properties of the function's SQS event whose Queue is the given queue's ARN."""
        events: dict[str, Any] = self.function_property(function_id, "Events") or {}
        for event in events.values():
            properties = event.get("Properties") or {}
            if event.get("Type") == "SQS" and properties.get("Queue") == {"Fn::GetAtt": [queue_id, "Arn"]}:
                found: dict[str, Any] = properties
                return found
        raise KeyError(f"{self.path.name}: {function_id} has no SQS event source on {queue_id}")

    # ------------------------------------------------------------ intrinsic functions

    def resolve(self, value: Any, scope: Scope) -> Any:
        """The value with every intrinsic function evaluated; AWS::NoValue entries removed."""
        resolved = self._resolve(value, scope)
        if resolved is _NO_VALUE:
            raise Unresolved("the value is AWS::NoValue")
        return resolved

    def condition(self, name: str, scope: Scope) -> bool:
        conditions: dict[str, Any] = self.document.get("Conditions") or {}
        if name not in conditions:
            raise Unresolved(f"no condition {name!r}")
        return bool(self._resolve(conditions[name], scope))

    def _resolve(self, value: Any, scope: Scope) -> Any:
        if isinstance(value, list):
            items = [self._resolve(item, scope) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, argument, scope)
        resolved = {key: self._resolve(item, scope) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _intrinsic(self, name: str, argument: Any, scope: Scope) -> Any:
        evaluate = self._INTRINSICS.get(name)
        if evaluate is None:
            raise Unresolved(f"{name} is not supported locally")
        return evaluate(self, argument, scope)

    def _get_att_of(self, argument: Any, scope: Scope) -> str:
        parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
        return self._get_att(str(self._resolve(parts[0], scope)), str(self._resolve(parts[1], scope)), scope)

    def _join(self, argument: Any, scope: Scope) -> str:
        delimiter, items = argument
        return str(delimiter).join(_scalar_text(item) for item in self._resolve(items, scope))

    def _select(self, argument: Any, scope: Scope) -> Any:
        index, items = argument
        return self._resolve(items, scope)[int(self._resolve(index, scope))]

    def _split(self, argument: Any, scope: Scope) -> list[str]:
        delimiter, text = argument
        return str(self._resolve(text, scope)).split(str(delimiter))

    def _if(self, argument: Any, scope: Scope) -> Any:
        condition, when_true, when_false = argument
        return self._resolve(when_true if self.condition(condition, scope) else when_false, scope)

    def _equals(self, argument: Any, scope: Scope) -> bool:
        left, right = (self._resolve(item, scope) for item in argument)
        return _scalar_text(left) == _scalar_text(right)

    def _find_in_map(self, argument: Any, scope: Scope) -> Any:
        mapping, top, second = (self._resolve(item, scope) for item in argument)
        return self.document["Mappings"][mapping][top][second]

    # Each intrinsic function the local stack evaluates: (template, argument, scope) -> value.
    _INTRINSICS: ClassVar[Mapping[str, Callable[[Template, Any, Scope], Any]]] = {
        "Ref": lambda self, argument, scope: self._ref(str(argument), scope),
        "Fn::GetAtt": _get_att_of,
        "Fn::Sub": lambda self, argument, scope: self._sub(argument, scope),
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::If": _if,
        "Fn::Equals": _equals,
        "Fn::Not": lambda self, argument, scope: not self._resolve(argument[0], scope),
        "Fn::And": lambda self, argument, scope: all(self._resolve(item, scope) for item in argument),
        "Fn::Or": lambda self, argument, scope: any(self._resolve(item, scope) for item in argument),
        "Condition": lambda self, argument, scope: self.condition(str(argument), scope),
        "Fn::FindInMap": _find_in_map,
    }

    def _ref(self, name: str, scope: Scope) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        pseudo = scope.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in (self.document.get("Parameters") or {}):
            if name in scope.parameters:
                return scope.parameters[name]
            default = self.parameter_default(name)
            if default is None:
                raise Unresolved(f"parameter {name} has no default and no local value")
            return default
        if name in scope.refs:
            return scope.refs[name]
        raise Unresolved(f"Ref {name}: no such resource in the local scope")

    def _get_att(self, logical_id: str, attribute: str, scope: Scope) -> str:
        key = f"{logical_id}.{attribute}"
        if key not in scope.attributes:
            raise Unresolved(f"GetAtt {key}: not provided by the local scope")
        return scope.attributes[key]

    def _sub(self, argument: Any, scope: Scope) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {name: self._resolve(value, scope) for name, value in (variables or {}).items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is written as ${Literal}
            if name in local:
                return _scalar_text(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attribute = name.partition(".")
                return self._get_att(logical_id, attribute, scope)
            return _scalar_text(self._ref(name, scope))

        return _SUB_VARIABLE.sub(replace, str(text))

    # ------------------------------------------------------------ resource helpers

    def sqs_attributes(self, logical_id: str, scope: Scope) -> dict[str, str]:
        """The queue's properties as the SQS attributes CloudFormation would set (CreateQueue's shape)."""
        properties = self.resolve(self.properties(logical_id), scope)
        attributes: dict[str, str] = {}
        for name in _SQS_ATTRIBUTE_PROPERTIES:
            if name in properties:
                value = properties[name]
                attributes[name] = json.dumps(value) if isinstance(value, dict) else _scalar_text(value)
        return attributes

    def settings(self, parameters: Mapping[str, str] | None = None) -> TemplateSettings:
        """The settings with these parameter values (the others take their defaults)."""
        return _settings_of(self, dict(parameters or {}))


def _scalar_text(value: Any) -> str:
    """A scalar as CloudFormation passes it to a service: booleans lower-case, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- the settings that matter


@dataclass(frozen=True)
class TemplateSettings:
    """The deployed settings the local topology must share with template.yaml, read from it only."""

    bus_name: str  # OrderEventsBusName (its default unless given)
    rule_event_pattern: Mapping[str, Any]  # resolved: EnableRefunds adds the refund names
    rule_state: str
    queue_visibility_timeout: int
    queue_message_retention: int
    max_receive_count: int
    dlq_message_retention: int
    batch_size: int
    maximum_batching_window: int  # seconds
    report_batch_item_failures: bool
    function_timeout: int  # seconds
    function_handler: str
    # Function environment variables whose value the template alone determines (literals, parameter
    # defaults); the others refer to resources or parameters the local stack provides.
    environment_defaults: Mapping[str, str]
    environment_references: Mapping[str, str]  # variable -> the logical id or parameter it refers to


def _settings_of(template: Template, parameters: Mapping[str, str]) -> TemplateSettings:
    scope = Scope(parameters=parameters)
    queue = template.properties(QUEUE)
    dlq = template.properties(DEAD_LETTER_QUEUE)
    rule = template.properties(RULE)
    source = template.sqs_event_source(FUNCTION, QUEUE)
    redrive = queue["RedrivePolicy"]
    if redrive.get("deadLetterTargetArn") != {"Fn::GetAtt": [DEAD_LETTER_QUEUE, "Arn"]}:
        raise ValueError(f"{QUEUE}'s RedrivePolicy does not target {DEAD_LETTER_QUEUE}")

    defaults: dict[str, str] = {}
    references: dict[str, str] = {}
    for name, value in template.function_variables(FUNCTION).items():
        try:
            defaults[name] = _scalar_text(template.resolve(value, scope))
        except Unresolved:
            references[name] = _referenced(value)
    return TemplateSettings(
        bus_name=parameters.get(BUS_PARAMETER) or _required_default(template, BUS_PARAMETER),
        rule_event_pattern=_frozen(template.resolve(rule["EventPattern"], scope)),
        rule_state=str(rule.get("State", "ENABLED")),
        queue_visibility_timeout=int(template.resolve(queue.get("VisibilityTimeout", 30), scope)),
        queue_message_retention=int(template.resolve(queue.get("MessageRetentionPeriod", 345600), scope)),
        max_receive_count=int(template.resolve(redrive["maxReceiveCount"], scope)),
        dlq_message_retention=int(template.resolve(dlq.get("MessageRetentionPeriod", 345600), scope)),
        batch_size=int(template.resolve(source.get("BatchSize", 10), scope)),
        maximum_batching_window=int(template.resolve(source.get("MaximumBatchingWindowInSeconds", 0), scope)),
        report_batch_item_failures="ReportBatchItemFailures"
        in template.resolve(source.get("FunctionResponseTypes", []), scope),
        function_timeout=int(template.resolve(template.function_property(FUNCTION, "Timeout") or 3, scope)),
        function_handler=str(template.resolve(template.function_property(FUNCTION, "Handler"), scope)),
        environment_defaults=MappingProxyType(defaults),
        environment_references=MappingProxyType(references),
    )


def _required_default(template: Template, parameter: str) -> str:
    default = template.parameter_default(parameter)
    if default is None:
        raise ValueError(f"parameter {parameter} has no default")
    return default


def _referenced(value: Any) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return ".".join(value["Fn::GetAtt"])
    return json.dumps(value)


def _frozen(value: Any) -> Mapping[str, Any]:
    if isinstance(value, dict):
        return MappingProxyType(value)
    raise ValueError("EventPattern must be an object")


@functools.cache
def load_template() -> Template:
    """template.yaml at the project root, read once per process."""
    return Template.load()


def load_settings() -> TemplateSettings:
    return load_template().settings()
