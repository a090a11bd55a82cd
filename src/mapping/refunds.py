"""Refunds and cancellations (CONTRACT §9): which Refersion cancel calls a refund event needs.

`plan_refund` takes a parsed refund event and the view of the delivered order and returns a
CancelPlan (the calls to make, at most 50 items each), a RefundDuplicate or a RefundSkipped
verdict, or raises InvalidEvent listing every reason. `apply_call` records an executed call in
the view. Pure: the edge stores the view and the plan, and makes the calls.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mapping.errors import InvalidEvent, shown
from mapping.order_state import LineKey, OrderLine, OrderView, lines_from
from mapping.refersion import Money
from mapping.refund_event import RefundEvent, RefundKeys, RefundLine, refund_keys

# Refersion accepts at most this many elements per /conversion/cancel call.
MAX_ITEMS_PER_CANCEL = 50

NOTHING_LEFT = "nothing left to cancel: every delivered item was already cancelled"
UNKNOWN_ORDER = "nothing known to cancel: perhaps an order from before the relay was installed"


# --- the body of POST {REFERSION_API_URL}/conversion/cancel ---------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RefersionCancelItem(_Body):
    sku: Annotated[str, Field(min_length=1)]
    price: Money  # the unit price as delivered, written as a plain JSON number like the paid order's
    quantity: Annotated[int, Field(strict=True, ge=1)]


class RefersionCancel(_Body):
    order_id: Annotated[str, Field(min_length=1)]
    items: Annotated[tuple[RefersionCancelItem, ...], Field(min_length=1, max_length=MAX_ITEMS_PER_CANCEL)]

    def to_json_bytes(self) -> bytes:
        """The exact POST body: compact UTF-8 JSON."""
        return self.__pydantic_serializer__.to_json(self)


# --- verdicts ----------------------------------------------------------------------------


class CancelPlan(_Body):
    """The cancel calls a refund needs, in the order to make them; stored until all are done.

    `keys` are the refund's duplicate keys (RefundKeys.all), to record once the last call is done.
    `as_given` is true for an order the relay never saw: items and prices are the event's own.
    """

    order_id: Annotated[str, Field(min_length=1)]
    calls: Annotated[
        tuple[Annotated[tuple[OrderLine, ...], Field(min_length=1, max_length=MAX_ITEMS_PER_CANCEL)], ...],
        Field(min_length=1),
    ]
    keys: tuple[str, ...] = ()
    as_given: bool = False

    def body(self, index: int) -> RefersionCancel:
        """The body of call number `index` (0-based)."""
        items = tuple(
            RefersionCancelItem(sku=line.sku, price=line.price, quantity=line.quantity)
            for line in self.calls[index]
        )
        return RefersionCancel(order_id=self.order_id, items=items)

    def is_last(self, index: int) -> bool:
        return index == len(self.calls) - 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CancelPlan:
        """Read a stored plan back; raises pydantic's ValidationError (a ValueError) if malformed."""
        return cls.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values: {"order_id", "calls": [[{"sku", "price": "5.50", "quantity"}]], ...}."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class RefundDuplicate:
    """Nothing to send: the refund was applied before, or nothing is left to cancel."""

    reason: str


@dataclass(frozen=True)
class RefundSkipped:
    """Nothing to send and nothing to retry: the relay knows nothing of the order to cancel."""

    reason: str


RefundVerdict = CancelPlan | RefundDuplicate | RefundSkipped


# --- planning ----------------------------------------------------------------------------


def plan_refund(
    refund: RefundEvent, view: OrderView | None, *, applied_keys: Collection[str] = ()
) -> RefundVerdict:
    """Decide what a refund event cancels (CONTRACT §9); raise InvalidEvent with every reason it cannot.

    `view` is the delivered order, or None for an order the relay has never seen once the wait is
    over: then a full refund is skipped, and one with products is sent as given (prices required).
    `applied_keys` are refund keys recorded outside a view (e.g. refunds sent as given).

    Duplicate (checked first, so a redelivered refund is never judged against its own effect):
    a refund with a messageId or a refund_id whose key was applied; one with neither whose
    content key (the same order and items) was; a full refund with nothing left to cancel.
    """
    keys = refund_keys(refund)
    applied = set(applied_keys) | set(view.refund_keys if view is not None else ())
    if any(key in applied for key in keys.checked):
        return RefundDuplicate(_already_applied(keys, applied))
    if view is None:
        return _plan_as_given(refund, keys.all)
    reasons = _currency_problems(refund, view)
    lines = refund.properties.lines
    if lines is None:
        if reasons:
            raise InvalidEvent(reasons)
        totals = view.remaining()
        if not totals:
            return RefundDuplicate(NOTHING_LEFT)
    else:
        totals = _partial_totals(refund, lines, view, reasons)
    return _plan(refund.order_id, totals, keys.all, as_given=False)


def apply_call(view: OrderView, plan: CancelPlan, index: int) -> OrderView:
    """The view once call `index` of `plan` was answered 2xx: its items are cancelled, and after the
    plan's last call its refund keys are recorded (so a redelivery then is a duplicate)."""
    updated = view.with_cancelled(plan.calls[index])
    return updated.with_refund_keys(plan.keys) if plan.is_last(index) else updated


def _already_applied(keys: RefundKeys, applied: Collection[str]) -> str:
    if keys.message in applied:
        return "this refund was already applied (same messageId)"
    if keys.refund in applied:
        return "this refund was already applied (same order_id and refund_id)"
    return "this refund was already applied (same order and items; it has no messageId nor refund_id)"


def _currency_problems(refund: RefundEvent, view: OrderView) -> list[str]:
    currency = refund.properties.currency
    if currency is None or currency == view.currency:
        return []
    return [f"properties.currency: {shown(currency)} is not the order's currency {shown(view.currency)}"]


def _plan(order_id: str, totals: Mapping[LineKey, int], keys: Sequence[str], *, as_given: bool) -> CancelPlan:
    lines = tuple(lines_from(totals))
    calls = tuple(
        lines[start : start + MAX_ITEMS_PER_CANCEL] for start in range(0, len(lines), MAX_ITEMS_PER_CANCEL)
    )
    return CancelPlan(order_id=order_id, calls=calls, keys=tuple(keys), as_given=as_given)


def _plan_as_given(refund: RefundEvent, keys: Sequence[str]) -> RefundVerdict:
    lines = refund.properties.lines
    if lines is None:
        return RefundSkipped(UNKNOWN_ORDER)
    field = refund.properties.lines_field
    missing = tuple(
        f"properties.{field}[{index}].price: is required: the relay never delivered this order,"
        " so the refund is sent as given"
        for index, line in enumerate(lines)
        if line.price is None
    )
    if missing:
        raise InvalidEvent(missing)
    totals: dict[LineKey, int] = {}
    for line in lines:
        key = (line.sku, line.price if line.price is not None else Decimal(0))  # checked above
        totals[key] = totals.get(key, 0) + line.quantity
    return _plan(refund.order_id, totals, keys, as_given=True)


# --- partial refunds: which delivered line each requested line is --------------------------


def _partial_totals(
    refund: RefundEvent, lines: Sequence[RefundLine], view: OrderView, reasons: list[str]
) -> dict[LineKey, int]:
    """Quantity to cancel per delivered (sku, price), in the order the event lists them; raises
    InvalidEvent with `reasons` (problems found before) and every problem of the lines."""
    field = refund.properties.lines_field
    remaining = view.remaining()
    prices_of = _prices_by_sku(view.delivered())
    requested: dict[LineKey, list[int]] = {}  # line key -> indexes of the event's lines asking for it
    for index, line in enumerate(lines):
        key = _delivered_line(line, prices_of.get(line.sku, ()), f"properties.{field}[{index}]", reasons)
        if key is not None:
            requested.setdefault(key, []).append(index)
    totals = {key: sum(lines[index].quantity for index in indexes) for key, indexes in requested.items()}
    for key, indexes in requested.items():
        if totals[key] > remaining.get(key, 0):
            reasons.append(_too_many(f"properties.{field}", key, indexes, totals[key], view))
    if reasons:
        raise InvalidEvent(reasons)
    return totals


def _prices_by_sku(delivered: Iterable[LineKey]) -> dict[str, tuple[Decimal, ...]]:
    prices: dict[str, tuple[Decimal, ...]] = {}
    for sku, price in delivered:
        prices[sku] = (*prices.get(sku, ()), price)
    return prices


def _delivered_line(
    line: RefundLine, prices: Sequence[Decimal], path: str, reasons: list[str]
) -> LineKey | None:
    """The delivered (sku, price) a requested line stands for, or None with the reason appended."""
    if not prices:
        reasons.append(f"{path}.sku: {shown(line.sku)} was not delivered in this order")
        return None
    if len(prices) == 1:
        return (line.sku, prices[0])  # nothing to pick among: the event's price is not needed
    if line.price is None:
        reasons.append(
            f"{path}.price: is required to tell the lines apart: sku {shown(line.sku)}"
            f" was delivered at {len(prices)} prices ({_listed(prices)})"
        )
        return None
    matching = [price for price in prices if price == line.price]
    if len(matching) != 1:
        reasons.append(
            f"{path}.price: {_plain(line.price)} matches none of the prices sku {shown(line.sku)}"
            f" was delivered at ({_listed(prices)})"
        )
        return None
    return (line.sku, matching[0])


def _too_many(path: str, key: LineKey, indexes: Sequence[int], asked: int, view: OrderView) -> str:
    sku, price = key
    delivered = view.delivered().get(key, 0)
    cancelled = view.cancelled_so_far().get(key, 0)
    left = max(delivered - cancelled, 0)
    together = f" (lines {_listed(indexes)} together)" if len(indexes) > 1 else ""
    return (
        f"{path}[{indexes[0]}].quantity: {asked} of sku {shown(sku)} at {_plain(price)} asked{together},"
        f" only {left} left to cancel ({delivered} delivered, {cancelled} already cancelled)"
    )


def _listed(values: Sequence[object]) -> str:
    words = [_plain(value) if isinstance(value, Decimal) else str(value) for value in values]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def _plain(price: Decimal) -> str:
    return format(price, "f")
