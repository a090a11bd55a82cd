"""Refersion's paid-order webhook body (POST /tracker/orders/paid), fields in the seed's order."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

from mapping.privacy import mask_email, mask_ip

# Amounts are held exactly (see mapping.fields for the rules) and written by to_json_bytes as plain
# JSON numbers. In logs (model_dump(mode="json")) they are floats: at most 15 significant digits
# come back unchanged from a double.
Money = Annotated[
    Decimal,
    Field(strict=True, ge=0, allow_inf_nan=False),
    PlainSerializer(float, return_type=float, when_used="json"),
]
_NonEmptyText = Annotated[str, Field(min_length=1)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RefersionCustomer(_Body):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    ip_address: str | None = None

    def is_empty(self) -> bool:
        return not (self.first_name or self.last_name or self.email or self.ip_address)


class RefersionItem(_Body):
    sku: _NonEmptyText
    name: str | None = None
    price: Money
    quantity: Annotated[int, Field(strict=True, ge=1)]


class RefersionOrder(_Body):
    cart_id: Annotated[str, Field(min_length=1, max_length=255)]
    order_id: _NonEmptyText
    currency_code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    shipping: Money | None = None
    tax: Money | None = None
    discount: Money | None = None
    discount_code: str | None = None
    customer: RefersionCustomer | None = None
    items: Annotated[tuple[RefersionItem, ...], Field(min_length=1)]
    is_subscription: bool | None = None
    subscription_id: str | None = None

    @field_validator("customer")
    @classmethod
    def _drop_empty_customer(cls, customer: RefersionCustomer | None) -> RefersionCustomer | None:
        # CONTRACT §3: a customer with no fields is left out, not sent as {}.
        return None if customer is None or customer.is_empty() else customer

    def to_json_bytes(self) -> bytes:
        """The exact POST body: compact UTF-8 JSON, absent fields left out (never null).

        Written here rather than by pydantic, whose float writer uses an exponent below 1e-5
        (0.0000001 -> 1e-7); every amount goes out as a plain decimal number.
        """
        return _json_text(self.model_dump(mode="python", exclude_none=True)).encode()

    def to_log_dict(self) -> dict[str, Any]:
        """The body as JSON-able values, with the customer's email and IP masked (CONTRACT §7)."""
        body: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        customer = body.get("customer")
        if customer:
            if "email" in customer:
                customer["email"] = mask_email(customer["email"])
            if "ip_address" in customer:
                customer["ip_address"] = mask_ip(customer["ip_address"])
        return body


def plain_number(amount: Decimal) -> str:
    """An amount as a JSON number with no exponent: 5.5, 0.0000001, 2.0 (the trailing ".0" that
    bodies had when amounts were written as floats, so the body digests of the ledger stay equal)."""
    if amount == 0:
        return "0.0"
    text = format(amount.normalize(), "f")
    return text if "." in text else text + ".0"


def _json_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return plain_number(value)
    if isinstance(value, dict):
        members = (f"{json.dumps(key, ensure_ascii=False)}:{_json_text(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)
