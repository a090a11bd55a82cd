"""The Datafly Order Refunded / Order Cancelled event (CONTRACT §9), and the keys that make it apply once.

Only what a cancellation needs is read: the order id, the optional refund id, currency and lines,
and the Datafly messageId. No customer data is read, so none can leak from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from mapping.datafly import EventPart
from mapping.errors import InvalidEvent, kind_of, problem, reasons_from
from mapping.fields import (
    NO_SKU,
    OptionalAmount,
    OptionalId,
    Quantity,
    RequiredId,
    Sku,
    currency_code,
)

# Length of the hex digests used as refund keys: 128 bits, short enough to keep many per order.
_KEY_HEX_CHARS = 32


def _optional_currency(value: object) -> str | None:
    return None if value is None else currency_code(value)


def _optional_message_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise problem(f"must be a string, got {kind_of(value)}")
    return value.strip() or None


def _at_least_one_product(products: tuple[Any, ...]) -> tuple[Any, ...]:
    if not products:
        raise problem("at least one product is required when products is given (leave it out to refund all)")
    return products


def _at_least_one_item(items: tuple[Any, ...]) -> tuple[Any, ...]:
    if not items:
        raise problem("at least one item is required when items is given (leave it out to refund all)")
    return items


class RefundProduct(EventPart):
    """One entry of properties.products[]: §3's product rules, but the price is optional."""

    sku: Sku = None
    product_id: OptionalId = None
    price: OptionalAmount = None
    quantity: Quantity

    @model_validator(mode="before")
    @classmethod
    def _flag_missing_sku(cls, data: Any) -> Any:
        # As for orders: a missing sku is reported alongside the line's other problems.
        if isinstance(data, Mapping) and _blank(data.get("sku")) and _blank(data.get("product_id")):
            return {**data, "sku": NO_SKU}
        return data


class RefundGA4Item(EventPart):
    """One entry of GA4-style properties.items[], read when products is not given."""

    item_id: RequiredId
    price: OptionalAmount = None
    quantity: Quantity


@dataclass(frozen=True)
class RefundLine:
    """One requested line, whichever list it came from; `price` only picks among delivered lines."""

    sku: str
    price: Decimal | None
    quantity: int


class RefundProperties(EventPart):
    order_id: RequiredId
    refund_id: OptionalId = None
    currency: Annotated[str | None, PlainValidator(_optional_currency)] = None
    products: Annotated[tuple[RefundProduct, ...], AfterValidator(_at_least_one_product)] | None = None
    items: Annotated[tuple[RefundGA4Item, ...], AfterValidator(_at_least_one_item)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _choose_line_items(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        if data.get("products") is not None:
            # products wins; a GA4 items list beside it is not read, so it cannot fail the refund.
            return {key: value for key, value in data.items() if key != "items"}
        if data.get("items") is not None:
            return {key: value for key, value in data.items() if key != "products"}
        return data  # an explicit null stays, to be refused by _refuse_null below

    @field_validator("products", "items", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any) -> Any:
        # null is not "left out": a producer's bug must not turn a partial refund into a full one.
        if value is None:
            raise problem("must be a list, or left out to refund the whole order; got null")
        return value

    @property
    def lines_field(self) -> str | None:
        """The list the lines came from ("products" or "items"); None for a full refund."""
        if self.products is not None:
            return "products"
        return "items" if self.items is not None else None

    @property
    def lines(self) -> tuple[RefundLine, ...] | None:
        """The requested lines in event order; None when the whole order is refunded."""
        if self.products is not None:
            return tuple(RefundLine(_line_sku(p), p.price, p.quantity) for p in self.products)
        if self.items is not None:
            return tuple(RefundLine(item.item_id, item.price, item.quantity) for item in self.items)
        return None


class RefundEvent(EventPart):
    """The parts of an Order Refunded / Order Cancelled event that the cancellation is made from."""

    message_id: Annotated[str | None, PlainValidator(_optional_message_id)] = Field(
        default=None, alias="messageId"
    )
    properties: RefundProperties

    @property
    def order_id(self) -> str:
        return self.properties.order_id

    @property
    def is_full(self) -> bool:
        """No products (nor GA4 items) listed: everything delivered and not yet cancelled goes."""
        return self.properties.lines is None


def parse_refund(event: Mapping[str, Any]) -> RefundEvent:
    """Read a refund or cancellation event, or raise InvalidEvent listing every problem."""
    try:
        return RefundEvent.model_validate(event)
    except ValidationError as error:
        raise InvalidEvent(reasons_from(error)) from None


# --- once: the keys of a refund -----------------------------------------------------------


@dataclass(frozen=True)
class RefundKeys:
    """The duplicate keys of one refund (hex digests with a prefix saying what they stand for).

    - `message`: "message:" + digest of the Datafly messageId, when it has one;
    - `refund`: "refund:" + digest of (order_id, refund_id), when it has a refund_id;
    - `content`: "content:" + digest of the order and the items requested, as written in the
      event but in a canonical form (lines merged by sku and price, prices normalised so 5.5 and
      "5.50" are one, sorted; a line with no price differs from one with a price), or
      "everything" for a full refund.

    The rule (CONTRACT §9 "Once"): a refund with a messageId or a refund_id is a duplicate when either
    of those keys was already applied; a refund with neither is a duplicate when its content key
    was (whichever refund recorded it). When a refund is applied, all of its keys are recorded.
    """

    message: str | None
    refund: str | None
    content: str

    @property
    def all(self) -> tuple[str, ...]:
        """Every key to record once the refund has been applied."""
        return tuple(key for key in (self.message, self.refund, self.content) if key is not None)

    @property
    def checked(self) -> tuple[str, ...]:
        """The keys that decide whether the refund was applied before (see the class docstring)."""
        identities = tuple(key for key in (self.message, self.refund) if key is not None)
        return identities or (self.content,)


def refund_keys(refund: RefundEvent) -> RefundKeys:
    """The duplicate keys of a refund event (see RefundKeys for the rule)."""
    properties = refund.properties
    message = None if refund.message_id is None else _key("message", refund.message_id)
    refund_key = (
        None if properties.refund_id is None else _key("refund", refund.order_id, properties.refund_id)
    )
    return RefundKeys(message, refund_key, _key("content", refund.order_id, *_canonical_lines(refund)))


def _canonical_lines(refund: RefundEvent) -> tuple[str, ...]:
    lines = refund.properties.lines
    if lines is None:
        return ("everything",)
    merged: dict[tuple[str, str], int] = {}
    for line in lines:
        price = "" if line.price is None else format(line.price.normalize(), "f")
        merged[(line.sku, price)] = merged.get((line.sku, price), 0) + line.quantity
    return tuple(json.dumps([sku, price, count]) for (sku, price), count in sorted(merged.items()))


def _key(prefix: str, *parts: str) -> str:
    # JSON keeps the parts apart (no separator can be forged from inside an id).
    digest = hashlib.sha256(json.dumps(parts).encode("ascii"))
    return f"{prefix}:{digest.hexdigest()[:_KEY_HEX_CHARS]}"


def _line_sku(product: RefundProduct) -> str:
    # Never empty: the product model turns "neither sku nor product_id" into an error.
    return product.sku or product.product_id or ""


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
