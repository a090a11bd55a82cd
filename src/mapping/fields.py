"""Value rules of SPEC §3: money, quantities, identifiers, currency codes, coupons.

Each parser takes a raw JSON value and returns the clean value, or raises a pydantic custom
error whose message is the reason text. They are wired into the Datafly models as validators,
so pydantic-core collects every problem of an event in one pass.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import PlainValidator, StringConstraints

from mapping.errors import kind_of, problem, shown

# Every amount must survive the trip through a JSON number (an IEEE double) unchanged:
# a double holds 15 significant decimal digits reliably.
MAX_SIGNIFICANT_DIGITS = 15
AMOUNT_LIMIT = Decimal(10) ** MAX_SIGNIFICANT_DIGITS
# Largest integer a JSON reader that uses doubles (JavaScript, many others) reads exactly.
MAX_QUANTITY = 2**53 - 1
# Identifiers sent as JSON integers: longer ones are not ids, and str() of huge ints is refused.
MAX_ID_DIGITS = 64

_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_LETTERS3 = re.compile(r"[A-Za-z]{3}")
_ZERO = Decimal(0)
# Marks "neither sku nor product_id was given", so the sku validator can report it in place.
NO_SKU = object()


# --- money -------------------------------------------------------------------------------


def amount(value: object) -> Decimal:
    """A required money amount: a JSON number or a plain decimal string, never negative."""
    if value is None:
        raise problem("is required")
    if isinstance(value, bool):
        raise problem(f"must be a number, got {kind_of(value)}")
    if isinstance(value, float):
        return _amount_from_float(value)
    if isinstance(value, int):
        return _amount_from_int(value)
    if isinstance(value, str):
        return _amount_from_text(value)
    raise problem(f"must be a number or a string such as '5.50', got {kind_of(value)}")


def optional_amount(value: object) -> Decimal | None:
    """An optional money amount: null means absent."""
    return None if value is None else amount(value)


def _amount_from_float(value: float) -> Decimal:
    if math.isnan(value) or math.isinf(value):
        raise problem(f"{shown(value)} is not a valid amount")
    if value < 0:
        raise problem(f"{shown(value)} is negative; an amount must be 0 or more")
    if value == 0:
        return _ZERO  # also turns -0.0 into 0, which would otherwise be sent as -0.0
    # Rounding to 15 significant digits drops binary noise: 0.1 + 0.2 -> 0.3.
    return _within_limit(Decimal(format(value, ".15g")), value)


def _amount_from_int(value: int) -> Decimal:
    if value < 0:
        raise problem(f"{shown(value)} is negative; an amount must be 0 or more")
    if value >= AMOUNT_LIMIT:
        raise problem(f"{shown(value)} is too large for an amount")
    return Decimal(value)


def _amount_from_text(value: str) -> Decimal:
    text = value.strip()
    if not text:
        raise problem("is empty; expected a plain number such as '5.50'")
    if not _PLAIN_NUMBER.fullmatch(text):
        if text.startswith("-") and _PLAIN_NUMBER.fullmatch(text[1:]):
            raise problem(f"{shown(value)} is negative; an amount must be 0 or more")
        raise problem(f"{shown(value)} is not a plain number")
    parsed = _within_limit(Decimal(text), value)
    if len(parsed.normalize().as_tuple().digits) > MAX_SIGNIFICANT_DIGITS:
        raise problem(
            f"{shown(value)} has more than {MAX_SIGNIFICANT_DIGITS} significant digits,"
            " which a JSON number cannot carry exactly"
        )
    return parsed


def _within_limit(parsed: Decimal, value: object) -> Decimal:
    if parsed >= AMOUNT_LIMIT:
        raise problem(f"{shown(value)} is too large for an amount")
    return parsed


# --- quantity ----------------------------------------------------------------------------


def quantity(value: object) -> int:
    """A whole number of at least 1: an integer, an integral float, or a string of digits."""
    if value is None:
        raise problem("is required")
    count = _whole_number(value)
    if count is None or count < 1:
        raise problem(f"must be a whole number of at least 1, got {shown(value)}")
    if count > MAX_QUANTITY:
        raise problem(f"{shown(value)} is too large for a quantity")
    return count


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        # The length cap keeps int() away from Python's limit on very long digit strings.
        if _DIGITS.fullmatch(text) and len(text) <= MAX_ID_DIGITS:
            return int(text)
    return None


# --- identifiers -------------------------------------------------------------------------


def optional_identifier(value: object) -> str | None:
    """An id sent as a string or a JSON integer (bools and floats are not ids). Blank means absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_ID_DIGITS:
            raise problem(f"{shown(value)} is too long for an id")
        return str(value)
    raise problem(f"must be a string or a whole number, got {shown(value)}")


def required_identifier(value: object) -> str:
    """Like optional_identifier, but the id must be there and not blank."""
    if value is None:
        raise problem("is required")
    identifier = optional_identifier(value)
    if identifier is None:
        raise problem("must not be empty")
    return identifier


def sku(value: object) -> str | None:
    """The sku of a product; NO_SKU is put in place by the product model when product_id is absent too."""
    if value is NO_SKU:
        raise problem("is required (or a product_id)")
    return optional_identifier(value)


# --- currency, coupon, lists -------------------------------------------------------------


def currency_code(value: object) -> str:
    """Three ASCII letters in any case, sent upper-case (ISO 4217 shape; the list itself is Refersion's)."""
    if value is None:
        raise problem("is required")
    if not isinstance(value, str):
        raise problem(f"must be a three-letter currency code such as 'USD', got {kind_of(value)}")
    code = value.strip()
    if not _LETTERS3.fullmatch(code):
        raise problem(f"{shown(value)} is not a three-letter currency code")
    return code.upper()


def coupon_codes(value: object) -> str | None:
    """One code, or a list of codes joined with commas; empty entries are skipped."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list | tuple):
        if not all(code is None or isinstance(code, str) for code in value):
            raise problem("must be a string or a list of strings")
        return ",".join(code.strip() for code in value if code and code.strip()) or None
    raise problem(f"must be a string or a list of strings, got {kind_of(value)}")


def at_least_one_product(products: list[Any]) -> list[Any]:
    if not products:
        raise problem("at least one product is required")
    return products


def at_least_one_item(items: list[Any]) -> list[Any]:
    if not items:
        raise problem("at least one item is required")
    return items


# --- the types the models use ------------------------------------------------------------

Amount = Annotated[Decimal, PlainValidator(amount)]
OptionalAmount = Annotated[Decimal | None, PlainValidator(optional_amount)]
Quantity = Annotated[int, PlainValidator(quantity)]
RequiredId = Annotated[str, PlainValidator(required_identifier)]
OptionalId = Annotated[str | None, PlainValidator(optional_identifier)]
Sku = Annotated[str | None, PlainValidator(sku)]
CurrencyCode = Annotated[str, PlainValidator(currency_code)]
CouponCodes = Annotated[str | None, PlainValidator(coupon_codes)]
# Plain strings are checked by pydantic-core itself (fast path); blank ones count as absent later.
Text = Annotated[str, StringConstraints(strip_whitespace=True, strict=True)]
CartId = Annotated[str, StringConstraints(strip_whitespace=True, strict=True, min_length=1, max_length=255)]
