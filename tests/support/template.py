"""template.yaml as the template tests read it: loaded once with the project's CloudFormation loader,
and small helpers to reach into it (no AWS, no SAM CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def load_template() -> dict[str, Any]:
    return load_cfn_file(TEMPLATE)


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


def matches(pattern: Any, event: Any) -> bool:
    """The subset of EventBridge matching the rule uses: nested keys, value lists, equals-ignore-case."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(
            key in event and matches(sub, event[key]) for key, sub in pattern.items()
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
    return matches(pattern, envelope({"type": "track", "event": name}))


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
