"""Refersion's conversion webhook (CONTRACT §10), the part of it the relay reads. Pure: no AWS, no env.

Refersion posts one JSON object per conversion to the merchant's webhook URL, for example::

    {"id": "123456", "order_id": "20150401102883", "status": "PENDING",
     "affiliate": {"id": "77", "first_name": "...", "email": "..."},
     "total": "12.75", "commission_total": "1.28", "currency": "USD",
     "created": "2026-11-20 10:00:03", "is_recurring": false, "subscription_id": null,
     "customer": {"email": "...", "first_name": "..."}}

Ids are read as strings whether they come as numbers or strings. Every other field is optional and
extra fields (customer and affiliate details among them) are tolerated and never kept: the model
holds no personal data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainValidator

from mapping.fields import optional_identifier, required_identifier


def _lenient_amount(value: object) -> Decimal | None:
    """An amount as Refersion writes it (number or decimal string); anything else is left out."""
    if value is None or isinstance(value, bool):
        return None
    try:
        parsed = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return parsed if parsed.is_finite() else None


def _lenient_text(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _lenient_flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return str(value) in ("1", "true")
    return None


def _object_or_none(value: object) -> Any:
    return value if isinstance(value, dict) else None


ConversionId = Annotated[str, PlainValidator(required_identifier)]
OptionalConversionId = Annotated[str | None, PlainValidator(optional_identifier)]
LenientAmount = Annotated[Decimal | None, PlainValidator(_lenient_amount)]
LenientText = Annotated[str | None, PlainValidator(_lenient_text)]
LenientFlag = Annotated[bool | None, PlainValidator(_lenient_flag)]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ConversionAffiliate(_Payload):
    id: OptionalConversionId = None


class ConversionWebhook(_Payload):
    """The conversion Refersion announces. `id` (the conversion id) and `order_id` are required."""

    id: ConversionId
    order_id: ConversionId
    status: LenientText = None
    affiliate: Annotated[ConversionAffiliate | None, BeforeValidator(_object_or_none)] = None
    total: LenientAmount = None
    commission_total: LenientAmount = None
    currency: LenientText = None
    created: LenientText = None
    is_recurring: LenientFlag = None
    subscription_id: OptionalConversionId = None

    @property
    def affiliate_id(self) -> str | None:
        return None if self.affiliate is None else self.affiliate.id


def missing_required(document: dict[str, Any]) -> str | None:
    """Which required field a JSON object lacks, in words for a 400 answer and a log line (no values)."""
    if optional_identifier_or_none(document.get("order_id")) is None:
        return "no order_id"
    if optional_identifier_or_none(document.get("id")) is None:
        return "no conversion id"
    return None


def optional_identifier_or_none(value: object) -> str | None:
    """The id as a string, or None when absent, blank or not an id at all."""
    try:
        return optional_identifier(value)
    except ValueError:
        return None
