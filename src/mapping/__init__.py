"""Pure domain of the relay: Datafly Order Completed event -> Refersion paid-order body,
and refund/cancellation events -> Refersion cancel calls (CONTRACT §9).

No AWS, no network, no environment, no logging: values in, values (or InvalidEvent) out.
"""

import importlib
from typing import TYPE_CHECKING, Any

from mapping.datafly import DataflyEvent, EventKind, classify_event
from mapping.errors import InvalidEvent
from mapping.order import OrderIds, map_order, order_ids_of
from mapping.privacy import consent_denied, is_sha256_hex, mask_email, mask_ip, scrub_text
from mapping.refersion import RefersionCustomer, RefersionItem, RefersionOrder

if TYPE_CHECKING:
    from mapping.order_state import OrderLine, OrderView
    from mapping.refund_event import RefundEvent, RefundKeys, RefundLine, parse_refund, refund_keys
    from mapping.refunds import (
        MAX_ITEMS_PER_CANCEL,
        CancelPlan,
        RefersionCancel,
        RefersionCancelItem,
        RefundDuplicate,
        RefundSkipped,
        RefundVerdict,
        apply_call,
        plan_refund,
    )

# The refund modules are loaded on first use, not with the package: the order path's cold start does
# not pay for them (docs/PERFORMANCE.md).
_LAZY = {
    **dict.fromkeys(("OrderLine", "OrderView"), "mapping.order_state"),
    **dict.fromkeys(
        ("RefundEvent", "RefundKeys", "RefundLine", "parse_refund", "refund_keys"), "mapping.refund_event"
    ),
    **dict.fromkeys(
        (
            "MAX_ITEMS_PER_CANCEL",
            "CancelPlan",
            "RefersionCancel",
            "RefersionCancelItem",
            "RefundDuplicate",
            "RefundSkipped",
            "RefundVerdict",
            "apply_call",
            "plan_refund",
        ),
        "mapping.refunds",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mapping' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "MAX_ITEMS_PER_CANCEL",
    "CancelPlan",
    "DataflyEvent",
    "EventKind",
    "InvalidEvent",
    "OrderIds",
    "OrderLine",
    "OrderView",
    "RefersionCancel",
    "RefersionCancelItem",
    "RefersionCustomer",
    "RefersionItem",
    "RefersionOrder",
    "RefundDuplicate",
    "RefundEvent",
    "RefundKeys",
    "RefundLine",
    "RefundSkipped",
    "RefundVerdict",
    "apply_call",
    "classify_event",
    "consent_denied",
    "is_sha256_hex",
    "map_order",
    "mask_email",
    "mask_ip",
    "order_ids_of",
    "parse_refund",
    "plan_refund",
    "refund_keys",
    "scrub_text",
]
