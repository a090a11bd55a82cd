"""The records the benchmark feeds the relay: the seed order, and orders with many products."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from local.lambda_shapes import eventbridge_envelope, load_event, sqs_event

# Lambda's limit for a synchronous invocation payload, which bounds an SQS batch.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
# SQS's classic message limit and EventBridge's event limit; the relay refuses larger records.
RECORD_LIMIT = 256 * 1024

_order_numbers = itertools.count(1)


def seed_event() -> dict[str, Any]:
    """The seed page's Order Completed event (events/datafly/seed-order.json)."""
    return copy.deepcopy(load_event("datafly/seed-order.json"))


def seed_body(order_id: str | None = None) -> str:
    """An SQS body as the bus -> queue path delivers it: the EventBridge envelope around the event."""
    event = seed_event()
    if order_id is not None:
        event["properties"]["order_id"] = order_id
    return json.dumps(eventbridge_envelope(event))


def seed_batch(size: int, tag: str = "bench") -> dict[str, Any]:
    """An SQS batch of seed orders, each with an order_id of its own (so idempotency never skips one)."""
    return sqs_event(*(seed_body(f"{tag}-{next(_order_numbers)}") for _ in range(size)))


def _product(n: int) -> dict[str, Any]:
    """A product line as a shop's tracking plan sends it: more fields than Refersion reads."""
    return {
        "product_id": f"P{n:07d}",
        "sku": f"SKU-{n:07d}",
        "name": f"Organic cotton t-shirt, crew neck, size M, colour {n % 17}",
        "category": "Apparel/Men/T-shirts",
        "brand": "Example Brand",
        "variant": "M / Navy",
        "price": 19.99 + (n % 7),
        "quantity": 1 + n % 3,
        "position": n,
        "url": f"https://shop.example.com/products/{n:07d}",
        "image_url": f"https://cdn.example.com/products/{n:07d}/main.jpg",
    }


def large_order_body(target_bytes: int, order_id: str) -> str:
    """An EventBridge-enveloped order with as many products as fit in target_bytes of body."""
    event = seed_event()
    event["properties"]["order_id"] = order_id
    one = len(json.dumps(_product(0))) + 2
    base = len(json.dumps(eventbridge_envelope(event)))
    count = max(1, (target_bytes - base) // one)
    while True:
        event["properties"]["products"] = [_product(n) for n in range(count)]
        body = json.dumps(eventbridge_envelope(event))
        if len(body.encode()) <= target_bytes or count == 1:
            return body
        count -= max(1, (len(body.encode()) - target_bytes) // one + 1)


def large_batch(record_bytes: int, *, total_bytes: int | None = None, records: int | None = None) -> bytes:
    """The JSON of an SQS event whose records carry orders of about record_bytes each.

    Either `records` records, or as many as fit in `total_bytes` of invocation payload (the JSON text
    Lambda hands the runtime, in which each body is an escaped string).
    """
    tag = next(_order_numbers)
    first = large_order_body(record_bytes, f"big-{tag}-0")
    if records is None:
        if total_bytes is None:
            raise ValueError("give records or total_bytes")
        one = len(json.dumps(sqs_event(first)).encode())
        records = max(1, total_bytes // one + 1)
    while True:
        bodies = [first.replace(f"big-{tag}-0", f"big-{tag}-{n}") for n in range(records)]
        text = json.dumps(sqs_event(*bodies)).encode()
        if total_bytes is None or len(text) <= total_bytes or records == 1:
            return text
        records -= 1
