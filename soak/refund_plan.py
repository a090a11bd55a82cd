"""The refund run's events (issue 11): full, partial, re-published and early refunds of soak orders.

A share of the valid orders gets one refund each: a full refund ("Order Cancelled", no products: all
that was delivered), a partial one ("Order Refunded", one unit of its first line), or one of either
published BEFORE its order (it overtakes the order: the relay has not seen it, and waits). A share of
those refunds is published again later (the same Datafly ``messageId`` and ``refund_id``: a duplicate).
Only orders whose skus are all different are refunded, so that a partial refund names one line.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from soak.plan import Planned
from soak.settings import NON_ORDER, VALID

REFUND_SHARE: Final = 0.25  # of the valid orders
REFUND_COPY_SHARE: Final = 0.30  # of the refunds, published again later
FULL, PARTIAL = "full refund", "partial refund"
EARLY_FULL, EARLY_PARTIAL = "full refund before its order", "partial refund before its order"
REFUND_COPY = "re-published refund"
REFUND_KINDS: Final = (FULL, PARTIAL, EARLY_FULL, EARLY_PARTIAL, REFUND_COPY)
EARLY_KINDS: Final = (EARLY_FULL, EARLY_PARTIAL)
EARLY_LEAD: Final = 30  # an early refund is published up to this many events before its order

Quantities = dict[str, int]  # sku -> quantity


def with_refunds(plan: Sequence[Planned], seed: int) -> list[Planned]:
    """The plan with refunds added (and without its "Order Refunded" non-order, which the refund rule
    would now forward); the same for the same arguments."""
    rng = random.Random(seed + 11)
    base = [p for p in plan if not (p.kind == NON_ORDER and p.detail.get("event") == "Order Refunded")]
    keyed: list[tuple[float, Planned]] = [(float(i), p) for i, p in enumerate(base)]
    position = {p.order_id: i for i, p in enumerate(base) if p.kind == VALID}
    refundable = [p for p in base if p.kind == VALID and _distinct_skus(p.detail)]
    chosen = rng.sample(refundable, min(len(refundable), max(4, round(len(position) * REFUND_SHARE))))
    for n, order in enumerate(chosen):
        kind = (FULL, PARTIAL, FULL, PARTIAL, EARLY_FULL, EARLY_PARTIAL)[n % 6]
        refund = Planned(kind, order.order_id, _refund_event(order, kind, rng))
        at = position[order.order_id]
        if kind in EARLY_KINDS:
            refund_at = at - rng.uniform(0.5, EARLY_LEAD)
        else:
            refund_at = at + 0.5 + rng.random() * (len(base) - at)
        keyed.append((refund_at, refund))
        if rng.random() < REFUND_COPY_SHARE:
            copy_at = max(refund_at, at) + 0.5 + rng.random() * (len(base) - max(refund_at, at))
            keyed.append((copy_at, Planned(REFUND_COPY, order.order_id, copy.deepcopy(refund.detail))))
    keyed.sort(key=lambda item: item[0])
    return [planned for _, planned in keyed]


def ordered_quantities(detail: Mapping[str, Any]) -> Quantities:
    quantities: Quantities = {}
    for product in detail["properties"]["products"]:
        sku = str(product["sku"])
        quantities[sku] = quantities.get(sku, 0) + int(product["quantity"])
    return quantities


def refunded_quantities(refund: Mapping[str, Any], ordered: Quantities) -> Quantities:
    """What a refund takes back: its products, or everything ordered when it lists none."""
    products = refund["properties"].get("products")
    if products is None:
        return dict(ordered)
    return {str(p["sku"]): int(p["quantity"]) for p in products}


def _distinct_skus(detail: Mapping[str, Any]) -> bool:
    skus = [str(p["sku"]) for p in detail["properties"]["products"]]
    return len(skus) == len(set(skus))


def _refund_event(order: Planned, kind: str, rng: random.Random) -> dict[str, Any]:
    properties: dict[str, Any] = {"order_id": order.order_id, "refund_id": f"RF-{order.order_id}"}
    if kind in (PARTIAL, EARLY_PARTIAL):
        first = order.detail["properties"]["products"][0]
        properties["products"] = [{"sku": first["sku"], "price": first["price"], "quantity": 1}]
    return {
        "type": "track",
        "event": "Order Refunded" if "products" in properties else "Order Cancelled",
        "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "properties": properties,
    }
