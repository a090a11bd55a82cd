"""Value rules of CONTRACT §3: money, quantities, identifiers, currency codes, coupons.

Each parser takes a raw JSON value and returns the clean value, or raises a pydantic custom
error whose message is the reason text. They are wired into the Datafly models as validators,
so pydantic-core collects every problem of an event in one pass.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator, StringConstraints

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
    """A money amount (CONTRACT §3). The rules, in full:

    1. Form: a JSON number, or a string holding a plain decimal number: ASCII digits with an optional
       fractional part ("5.50", "007.10"); blanks around it are ignored. Nothing else: no exponent,
       currency symbol, thousands separator, leading "+" or ".", NaN or Infinity; true/false are not
       numbers.
    2. Sign: an amount below zero is invalid. Zero written with a minus sign (-0.0, "-0", "-0.00")
       is zero.
    3. Precision: at most 15 significant digits, all a JSON number (an IEEE double) carries exactly.
       A string is exact decimal text: with more digits it is invalid, never rounded. A JSON number
       is a double: it is read to 15 significant digits, the rest being binary noise (0.1 + 0.2 ->
       0.3, 5.499999999999999 -> 5.5).
    4. Size: below 10^15, after rule 3 (so 999999999999999.9 as a JSON number reads as 10^15 and is
       too large; as a string it has 16 significant digits).
    5. Output: the amount's exact value as a plain JSON number, no exponent, trailing zeros dropped
       and ".0" on whole amounts ("5.50" -> 5.5, "0.0000001" -> 0.0000001, 2 -> 2.0, "-0.00" -> 0.0).
    """
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
    rounded = Decimal(format(value, ".15g"))
    if rounded >= AMOUNT_LIMIT > value:
        raise problem(
            f"{shown(value)} is {AMOUNT_LIMIT:f} to the {MAX_SIGNIFICANT_DIGITS} significant digits a JSON"
            " number carries: too large for an amount"
        )
    return _within_limit(rounded, value)


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
    digits = text[1:] if text.startswith("-") else text
    if not _PLAIN_NUMBER.fullmatch(digits):
        raise problem(f"{shown(value)} is not a plain number")
    parsed = Decimal(digits)
    if parsed == 0:
        return _ZERO  # "-0.00" is zero, like the JSON number -0.0
    if digits is not text:
        raise problem(f"{shown(value)} is negative; an amount must be 0 or more")
    if len(parsed.normalize().as_tuple().digits) > MAX_SIGNIFICANT_DIGITS:
        raise problem(
            f"{shown(value)} has more than {MAX_SIGNIFICANT_DIGITS} significant digits,"
            " which a JSON number cannot carry exactly"
        )
    return _within_limit(parsed, value)


def _within_limit(parsed: Decimal, value: object) -> Decimal:
    if parsed >= AMOUNT_LIMIT:
        raise problem(f"{shown(value)} is too large for an amount")
    return parsed


# --- text --------------------------------------------------------------------------------


def unicode_text(value: str) -> str:
    """Text that can be written as UTF-8: a lone surrogate ("\\udc00" in the JSON) is not text."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise problem("contains a lone surrogate (such as \\udc00), which is not valid Unicode") from None
    return value


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
        return unicode_text(value.strip()) or None
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
        return unicode_text(value.strip()) or None
    if isinstance(value, list | tuple):
        if not all(code is None or isinstance(code, str) for code in value):
            raise problem("must be a string or a list of strings")
        return unicode_text(",".join(code.strip() for code in value if code and code.strip())) or None
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
Text = Annotated[str, StringConstraints(strip_whitespace=True, strict=True), AfterValidator(unicode_text)]
CartId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, strict=True, min_length=1, max_length=255),
    AfterValidator(unicode_text),
]
