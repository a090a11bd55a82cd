"""What the soak publishes: valid orders, invalid ones, re-published duplicates and non-order events."""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.lambda_shapes import load_event
from soak.settings import DUPLICATE, DUPLICATE_SHARE, INVALID, INVALID_SHARE, NON_ORDER, VALID


@dataclass
class Planned:
    """One event to publish, and what it is."""

    kind: str
    order_id: str | None
    detail: dict[str, Any]
    event_id: str = ""


def build_plan(orders: int, seed: int) -> list[Planned]:
    """The events, in publishing order; the same for the same arguments."""
    rng = random.Random(seed)
    template = load_event("datafly/seed-order.json")
    valid = [Planned(VALID, f"S{n:06d}", _order(f"S{n:06d}", rng, template)) for n in range(orders)]
    invalid: list[Planned] = []
    for n in range(max(1, round(orders * INVALID_SHARE))):
        order_id = f"X{n:06d}"
        detail = _order(order_id, rng, template)
        if n % 2:
            del detail["properties"]["cart_id"]
        else:
            detail["properties"]["products"][0]["price"] = "$5.50"
        invalid.append(Planned(INVALID, order_id, detail))
    base = [*valid, *invalid, *(Planned(NON_ORDER, None, d) for d in _non_orders(rng))]
    rng.shuffle(base)
    # Duplicates: each copy is published after its original, anywhere from the same chunk to the end.
    keyed: list[tuple[float, Planned]] = [(float(i), p) for i, p in enumerate(base)]
    position = {p.order_id: i for i, p in enumerate(base) if p.kind == VALID}
    for original in rng.sample(valid, max(1, round(orders * DUPLICATE_SHARE))):
        start = position[original.order_id] + 1
        copy_at = start + rng.random() * (len(base) - start + 1)
        keyed.append((copy_at, Planned(DUPLICATE, original.order_id, copy.deepcopy(original.detail))))
    keyed.sort(key=lambda item: item[0])
    return [planned for _, planned in keyed]


def _order(order_id: str, rng: random.Random, template: Mapping[str, Any]) -> dict[str, Any]:
    detail = copy.deepcopy(dict(template))
    detail["messageId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    properties = detail["properties"]
    properties["order_id"] = order_id
    properties["cart_id"] = f"cart_{order_id}"
    properties["shipping"] = round(rng.uniform(0, 20), 2)
    properties["tax"] = round(rng.uniform(0, 10), 2)
    properties["products"] = [
        {
            "sku": f"SKU-{rng.randrange(1000):03d}",
            "name": f"Product {rng.randrange(1000)}",
            "price": round(rng.uniform(1, 250), 2),
            "quantity": rng.randint(1, 3),
        }
        for _ in range(rng.randint(1, 3))
    ]
    return detail


def _non_orders(rng: random.Random) -> list[dict[str, Any]]:
    def track(name: str) -> dict[str, Any]:
        return {
            "type": "track",
            "event": name,
            "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "properties": {"order_id": "not-an-order"},
        }

    return [
        load_event("datafly/page-view.json"),
        track("Product Viewed"),
        track("Checkout Started"),
        track("Order Refunded"),
        {"type": "identify", "userId": "user_1", "traits": {"plan": "pro"}},
    ]
