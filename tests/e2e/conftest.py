"""The whole local topology per test (tests/local/stack.py): moto, the Refersion sandbox, the environment."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PUBLIC_KEY, SECRET_KEY
from tests.local.lambda_shapes import load_event
from tests.local.stack import LocalStack


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """A started stack of its own (fresh moto server and sandbox on ephemeral ports)."""
    with LocalStack(public_key=PUBLIC_KEY, secret_key=SECRET_KEY) as running:
        yield running
    assert running.left_behind == [], "the stack left threads or listening sockets behind"


def order(order_id: str, *, event: str = "Order Completed", **changes: Any) -> dict[str, Any]:
    """The seed's Order Completed event with its own order id (and cart id), plus property changes."""
    detail = copy.deepcopy(load_event("datafly/seed-order.json"))
    detail["event"] = event
    detail["messageId"] = str(uuid.uuid4())
    detail["properties"].update({"order_id": order_id, "cart_id": f"cart_{order_id}", **changes})
    return detail


def track(name: str) -> dict[str, Any]:
    return {"type": "track", "event": name, "messageId": str(uuid.uuid4()), "properties": {"order_id": "x"}}
