"""Order Completed event -> Refersion paid-order body (CONTRACT §3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from mapping.datafly import DataflyEvent, EventContext, GA4Item, OrderProperties, Product, Traits
from mapping.errors import InvalidEvent, reasons_from
from mapping.fields import CartId, OptionalId
from mapping.privacy import is_sha256_hex
from mapping.refersion import RefersionOrder

_NO_TRAITS = Traits()
# The same rules as the order's own fields, applied one field at a time.
_ORDER_ID = TypeAdapter(OptionalId)
_CART_ID = TypeAdapter(CartId | None)
# Longer ids are cut in log lines: Refersion's own cart_id limit.
_SHOWN_ID_CHARS = 255


class OrderIds(NamedTuple):
    order_id: str | None
    cart_id: str | None


def map_order(event: Mapping[str, Any]) -> RefersionOrder:
    """Build the Refersion body, or raise InvalidEvent listing every problem of the event."""
    try:
        parsed = DataflyEvent.model_validate(event)
        # The body model re-checks its own invariants; in one pydantic-core call that is
        # cheaper than assembling the models field by field in Python.
        return RefersionOrder.model_validate(_body_from(parsed))
    except RecursionError:
        raise InvalidEvent(("event: nested too deeply to read",)) from None
    except ValidationError as error:
        # `from None`: pydantic's own text quotes raw input (emails, names) and must not reach logs.
        raise InvalidEvent(reasons_from(error)) from None


def order_ids_of(event: Mapping[str, Any]) -> OrderIds:
    """properties.order_id and cart_id as far as the mapping's rules can read them, each on its own.

    For the log line of an event that is not delivered (dropped, skipped or invalid): an id that
    breaks its rule, or is absent, is None; the other one is still read.
    """
    properties = event.get("properties")
    if not isinstance(properties, Mapping):
        return OrderIds(None, None)
    return OrderIds(
        _readable(_ORDER_ID, properties.get("order_id")), _readable(_CART_ID, properties.get("cart_id"))
    )


def _readable(rule: TypeAdapter[str | None], value: object) -> str | None:
    try:
        identifier = rule.validate_python(value)
    except ValidationError:
        return None
    return None if identifier is None else identifier[:_SHOWN_ID_CHARS]


def _body_from(event: DataflyEvent) -> dict[str, Any]:
    properties = event.properties
    return {
        "cart_id": properties.cart_id,
        "order_id": properties.order_id,
        "currency_code": properties.currency,
        "shipping": properties.shipping,
        "tax": properties.tax,
        "discount": properties.discount,
        "discount_code": properties.coupon,
        "customer": _customer_from(event.context),
        "items": _items_from(properties),
        "is_subscription": properties.is_subscription,
        "subscription_id": properties.subscription_id,
    }


def _customer_from(context: EventContext | None) -> dict[str, str | None] | None:
    if context is None:
        return None
    traits = context.traits or _NO_TRAITS
    # Blank strings count as absent; RefersionOrder drops a customer left with no fields.
    return {
        "first_name": traits.first_name or traits.first_name_camel or None,
        "last_name": traits.last_name or traits.last_name_camel or None,
        "email": _usable_email(traits.email),
        "ip_address": context.ip or None,
    }


def _usable_email(email: str | None) -> str | None:
    # A hashed email cannot be read by Refersion, so it is not sent at all (CONTRACT §3).
    if not email or is_sha256_hex(email):
        return None
    return email


def _items_from(properties: OrderProperties) -> list[dict[str, Any]]:
    if properties.products is not None:
        return [_item_from_product(product) for product in properties.products]
    return [_item_from_ga4(item) for item in properties.items or ()]


def _item_from_product(product: Product) -> dict[str, Any]:
    return {
        "sku": product.line_sku,
        "name": product.name or None,
        "price": product.price,
        "quantity": product.quantity,
    }


def _item_from_ga4(item: GA4Item) -> dict[str, Any]:
    return {
        "sku": item.item_id,
        "name": item.item_name or None,
        "price": item.price,
        "quantity": item.quantity,
    }
