"""Issue 11 in the demo: one partial refund and one full cancellation of delivered orders (EnableRefunds).

Published once the orders are delivered: an "Order Refunded" of 1 of the seed order's 2 units, and an
"Order Cancelled" without products (everything left) of the order refused once. The relay plans each from
the order state and calls Refersion's conversion cancel; the sandbox applies each cancel it accepts, so
its net quantity per order and sku must be what was ordered less what was refunded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from local.demo_rows import Row
from local.stack import LocalStack

PARAMETERS: Final[Mapping[str, str]] = {"EnableRefunds": "true"}  # the refund rule, REFUNDS_ENABLED=true
Quantities = dict[str, dict[str, int]]  # order id -> sku -> quantity


def refund_rows(seed_order_id: str, cancelled_order_id: str) -> list[Row]:
    partial = {
        "type": "track",
        "event": "Order Refunded",
        "messageId": "5d2c8e4f-7a1b-4c3d-9e8f-0a1b2c3d4e5f",
        "properties": {
            "order_id": seed_order_id,
            "refund_id": "RF-1001",
            "products": [{"sku": "PROD_A", "price": 5.5, "quantity": 1}],
        },
    }
    full = {
        "type": "track",
        "event": "Order Cancelled",
        "messageId": "6e3d9f50-8b2c-4d4e-8f90-1b2c3d4e5f60",
        "properties": {"order_id": cancelled_order_id},
    }
    return [
        Row("partial refund", partial, expected="delivered"),
        Row("full cancellation", full, expected="delivered"),
    ]


def ordered_quantities(orders: Sequence[Row]) -> Quantities:
    """What each Order Completed event ordered (sku, or product_id as the relay reads it)."""
    ordered: Quantities = {}
    for row in orders:
        per_sku = ordered.setdefault(row.order_id, {})
        for product in row.detail["properties"]["products"]:
            sku = str(product.get("sku") or product.get("product_id"))
            per_sku[sku] = per_sku.get(sku, 0) + int(product["quantity"])
    return ordered


def expected_net(ordered: Quantities, refunds: Sequence[Row]) -> Quantities:
    """Ordered less refunded: a refund's products, or everything left for one without products."""
    net = {order_id: dict(per_sku) for order_id, per_sku in ordered.items()}
    for row in refunds:
        per_sku = net.setdefault(row.order_id, {})
        products: list[dict[str, Any]] | None = row.detail["properties"].get("products")
        if products is None:
            per_sku.update(dict.fromkeys(per_sku, 0))
            continue
        for product in products:
            per_sku[str(product["sku"])] = per_sku.get(str(product["sku"]), 0) - int(product["quantity"])
    return net


def net_lines(ordered: Quantities, net: Quantities) -> list[str]:
    """One line per order: each sku's ordered, refunded and net quantity at the sandbox."""
    lines = []
    for order_id in sorted(net):
        parts = []
        for sku, quantity in sorted(net[order_id].items()):
            bought = ordered.get(order_id, {}).get(sku, 0)
            parts.append(f"{sku}: {bought} ordered - {bought - quantity} refunded = {quantity}")
        lines.append(f"  {order_id}  " + "; ".join(parts))
    return lines


def story(stack: LocalStack, ordered: Quantities) -> list[str]:
    """The cancel bodies the sandbox accepted, exactly as received, and the net quantities."""
    lines = [f"\nCancel bodies Refersion received (POST {stack.sandbox.api_url}/conversion/cancel), as sent:"]
    lines.extend(f"  {record.body.decode('utf-8')}" for record in stack.sandbox.cancels())
    lines.append("\nNet quantity per order at Refersion (credited less cancelled):")
    lines.extend(net_lines(ordered, stack.sandbox.net_quantities()))
    return lines


def problems(stack: LocalStack, ordered: Quantities, refunds: Sequence[Row]) -> list[str]:
    found = [
        f"{row.label}: expected {row.expected}, got {row.outcome} ({row.reason})"
        for row in refunds
        if row.outcome != row.expected
    ]
    cancels = stack.sandbox.cancels()
    if len(cancels) != len(refunds):
        found.append(f"Refersion applied {len(cancels)} cancel(s), expected {len(refunds)}")
    net, wanted = stack.sandbox.net_quantities(), expected_net(ordered, refunds)
    if net != wanted:
        found.append(f"net quantities at Refersion {net}, expected ordered less refunded {wanted}")
    return found
