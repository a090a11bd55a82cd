"""The Datafly Signal event (CONTRACT §2): which events are orders, and the shape of an order event.

The models read only what the mapping uses; every other field of the event is ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from mapping.errors import InvalidEvent, kind_of
from mapping.fields import (
    NO_SKU,
    Amount,
    CartId,
    CouponCodes,
    CurrencyCode,
    OptionalAmount,
    OptionalId,
    Quantity,
    RequiredId,
    Sku,
    Text,
    at_least_one_item,
    at_least_one_product,
)


class EventKind(enum.StrEnum):
    ORDER_COMPLETED = "order_completed"
    ORDER_REFUNDED = "order_refunded"  # CONTRACT §9: takes the commission back
    ORDER_CANCELLED = "order_cancelled"  # CONTRACT §9: Order Cancelled or Order Canceled, same effect
    OTHER = "other"  # a Datafly event the relay does not act on: it drops it

    @property
    def is_refund(self) -> bool:
        """A refund or a cancellation (CONTRACT §9): both cancel delivered items the same way."""
        return self in (EventKind.ORDER_REFUNDED, EventKind.ORDER_CANCELLED)


def _spellings(*names: str) -> tuple[str, ...]:
    # "Order Completed" is matched as "order completed" and "order_completed" (any letter case).
    return tuple(spelling for name in names for spelling in (name, name.replace(" ", "_")))


_KIND_OF_NAME: dict[str, EventKind] = {
    **dict.fromkeys(_spellings("order completed"), EventKind.ORDER_COMPLETED),
    **dict.fromkeys(_spellings("order refunded"), EventKind.ORDER_REFUNDED),
    **dict.fromkeys(_spellings("order cancelled", "order canceled"), EventKind.ORDER_CANCELLED),
}


def classify_event(event: object) -> EventKind:
    """Tell which Datafly event this is (CONTRACT §2, §9); refuse what is not a Datafly event at all.

    Ask `kind is EventKind.ORDER_COMPLETED` for "is this an order to post": refunds are kinds of
    their own, and every name the relay does not act on is OTHER.
    """
    if not isinstance(event, Mapping):
        raise InvalidEvent((f"event: must be a JSON object, got {kind_of(event)}",))
    event_type = _label(event.get("type"))
    name = _label(event.get("event"))
    if event_type is None and name is None:
        raise InvalidEvent(("event: not a Datafly event: it has neither an 'event' name nor a 'type'",))
    # identify/page/screen/group/alias calls are never orders, whatever their name says.
    if name is None or event_type not in (None, "track"):
        return EventKind.OTHER
    return _KIND_OF_NAME.get(name, EventKind.OTHER)


def _label(value: object) -> str | None:
    """A name or type compared case-insensitively; blanks and non-strings count as absent."""
    if isinstance(value, str):
        return value.strip().lower() or None
    return None


class EventPart(BaseModel):
    """A part of a Datafly event: read-only, and fields the relay does not use are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Product(EventPart):
    """One entry of properties.products[] (Datafly's ecommerce spec)."""

    sku: Sku = None
    product_id: OptionalId = None
    name: Text | None = None
    price: Amount
    quantity: Quantity

    @model_validator(mode="before")
    @classmethod
    def _flag_missing_sku(cls, data: Any) -> Any:
        # Checked before the fields so a missing sku is reported alongside the item's other problems.
        if isinstance(data, Mapping) and _blank(data.get("sku")) and _blank(data.get("product_id")):
            return {**data, "sku": NO_SKU}
        return data

    @property
    def line_sku(self) -> str:
        # Never empty: the validator above turns "neither sku nor product_id" into an error.
        return self.sku or self.product_id or ""


class GA4Item(EventPart):
    """One entry of GA4-style properties.items[], accepted when products is absent."""

    item_id: RequiredId
    item_name: Text | None = None
    price: Amount
    quantity: Quantity


class OrderProperties(EventPart):
    cart_id: CartId
    order_id: RequiredId
    currency: CurrencyCode
    shipping: OptionalAmount = None
    tax: OptionalAmount = None
    discount: OptionalAmount = None
    coupon: CouponCodes = None
    products: Annotated[tuple[Product, ...], AfterValidator(at_least_one_product)] | None = None
    items: Annotated[tuple[GA4Item, ...], AfterValidator(at_least_one_item)] | None = None
    is_subscription: StrictBool | None = None
    subscription_id: OptionalId = None

    @model_validator(mode="before")
    @classmethod
    def _choose_line_items(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        has_products = data.get("products") is not None
        if has_products and "items" in data:
            # products wins; a GA4 items list beside it is not read, so it cannot fail the order.
            return {key: value for key, value in data.items() if key != "items"}
        if not has_products and data.get("items") is None:
            return {**data, "products": ()}  # reported as "at least one product is required"
        return data


class Traits(EventPart):
    email: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    first_name_camel: Text | None = Field(default=None, alias="firstName")
    last_name_camel: Text | None = Field(default=None, alias="lastName")


class EventContext(EventPart):
    ip: Text | None = None
    traits: Traits | None = None


class DataflyEvent(EventPart):
    """The parts of an Order Completed event that the Refersion body is made from."""

    properties: OrderProperties
    context: EventContext | None = None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
