"""Pure domain of the relay: Datafly Order Completed event -> Refersion paid-order body.

No AWS, no network, no environment, no logging: values in, values (or InvalidEvent) out.
"""

from mapping.datafly import DataflyEvent, EventKind, classify_event
from mapping.errors import InvalidEvent
from mapping.order import OrderIds, map_order, order_ids_of
from mapping.privacy import consent_denied, is_sha256_hex, mask_email, mask_ip, scrub_text
from mapping.refersion import RefersionCustomer, RefersionItem, RefersionOrder

__all__ = [
    "DataflyEvent",
    "EventKind",
    "InvalidEvent",
    "OrderIds",
    "RefersionCustomer",
    "RefersionItem",
    "RefersionOrder",
    "classify_event",
    "consent_denied",
    "is_sha256_hex",
    "map_order",
    "mask_email",
    "mask_ip",
    "order_ids_of",
    "scrub_text",
]
