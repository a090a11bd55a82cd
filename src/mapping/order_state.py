"""What the relay knows about a delivered order, as far as refunds need it (the CONTRACT §11 subset of §9).

The items as sent (sku, unit price as delivered, quantity), the order's currency, what has been
cancelled so far (by sku and price) and the refund keys already applied. No customer data.
It travels as plain JSON-able values (prices as decimal strings) so a store can keep it as is:

    {"currency": "USD",
     "items": [{"sku": "PROD_A", "price": "5.50", "quantity": 2}],
     "cancelled": [{"sku": "PROD_A", "price": "5.50", "quantity": 1}],
     "refund_keys": ["message:0f3a..."]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mapping.refersion import RefersionOrder

# One delivered line as Refersion knows it: the sku and the unit price that was sent.
LineKey = tuple[str, Decimal]


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderLine(_State):
    """A sku at one unit price, and how many of it (delivered, cancelled or to cancel)."""

    sku: Annotated[str, Field(min_length=1)]
    # Lax on purpose: the store gives prices back as strings, DynamoDB numbers as Decimal.
    price: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
    quantity: Annotated[int, Field(ge=1)]

    @property
    def key(self) -> LineKey:
        # Decimal("5.5") and Decimal("5.50") are equal and hash alike: one line at Refersion.
        return (self.sku, self.price)


class OrderView(_State):
    """A delivered order seen by the refund planner. Immutable: `with_*` return a new view."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[tuple[OrderLine, ...], Field(min_length=1)]
    cancelled: tuple[OrderLine, ...] = ()
    refund_keys: tuple[str, ...] = ()

    @classmethod
    def from_delivered(cls, order: RefersionOrder) -> OrderView:
        """The view of an order just delivered: its items as sent, nothing cancelled yet."""
        items = tuple(OrderLine(sku=i.sku, price=i.price, quantity=i.quantity) for i in order.items)
        return cls(currency=order.currency_code, items=items)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderView:
        """Read a stored view back; raises pydantic's ValidationError (a ValueError) if it is malformed."""
        return cls.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values: prices as decimal strings exactly as delivered ("5.50")."""
        return self.model_dump(mode="json")

    def delivered(self) -> dict[LineKey, int]:
        """Quantity delivered per (sku, price), in the order the lines were sent."""
        return _totals(self.items)

    def cancelled_so_far(self) -> dict[LineKey, int]:
        return _totals(self.cancelled)

    def remaining(self) -> dict[LineKey, int]:
        """Quantity delivered and not yet cancelled per (sku, price); lines with nothing left omitted."""
        cancelled = self.cancelled_so_far()
        left = {key: count - cancelled.get(key, 0) for key, count in self.delivered().items()}
        return {key: count for key, count in left.items() if count > 0}

    def with_cancelled(self, lines: Iterable[OrderLine]) -> OrderView:
        """This view after `lines` were cancelled at Refersion (merged by sku and price)."""
        totals = _totals((*self.cancelled, *lines))
        merged = tuple(lines_from(totals))
        return self.model_copy(update={"cancelled": merged})

    def with_refund_keys(self, keys: Iterable[str]) -> OrderView:
        """This view with `keys` recorded as applied (each once, in the order first seen)."""
        return self.model_copy(update={"refund_keys": tuple(dict.fromkeys((*self.refund_keys, *keys)))})


def lines_from(totals: Mapping[LineKey, int]) -> Iterable[OrderLine]:
    """(sku, price) -> quantity back into lines, in the mapping's order."""
    return (OrderLine(sku=sku, price=price, quantity=count) for (sku, price), count in totals.items())


def _totals(lines: Iterable[OrderLine]) -> dict[LineKey, int]:
    totals: dict[LineKey, int] = {}
    for line in lines:
        totals[line.key] = totals.get(line.key, 0) + line.quantity
    return totals
