"""Builders of the events and batches the tests send, and readers of the handler's answers."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from local.lambda_shapes import eventbridge_envelope, load_event


def as_eventbridge_body(event: dict[str, Any]) -> str:
    """An SQS body as the bus rule writes it: the Datafly event inside an EventBridge envelope."""
    return json.dumps(eventbridge_envelope(event))


def failures(response: dict[str, Any]) -> list[str]:
    """The message ids a partial-batch response hands back to SQS."""
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def order(order_id: str, *, event: str = "Order Completed", **changes: Any) -> dict[str, Any]:
    """The seed's Order Completed event with its own order id (and cart id), plus property changes."""
    detail = copy.deepcopy(load_event("datafly/seed-order.json"))
    detail["event"] = event
    detail["messageId"] = str(uuid.uuid4())
    detail["properties"].update({"order_id": order_id, "cart_id": f"cart_{order_id}", **changes})
    return detail


def track(name: str) -> dict[str, Any]:
    return {"type": "track", "event": name, "messageId": str(uuid.uuid4()), "properties": {"order_id": "x"}}
