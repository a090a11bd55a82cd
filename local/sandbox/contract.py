"""Refersion's documented contract for ``POST /tracker/orders/paid`` (CONTRACT §5): key pair, then body;
and for ``POST /v2/conversion/cancel`` (CONTRACT §9): key pair, then body (``check_cancel``).

401 for a missing or wrong key pair, 400 naming the field for a missing ``cart_id``/``order_id``/
``currency_code`` or a malformed ``items`` entry, otherwise 200. Pure functions: no sockets, no state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Final

from local.sandbox.values import CANCEL_PATH, PATH

_UNAUTHORIZED: Final = {"error": "Unauthorized: invalid key pair"}
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_MONEY_FIELDS: Final = ("shipping", "tax", "discount")
_CUSTOMER_FIELDS: Final = ("email", "first_name", "last_name", "ip_address")
_PLAIN_NUMBER: Final = "must be a plain JSON number (no currency symbol, not a string)"


@dataclass(frozen=True)
class Outcome:
    """What the normal (unscripted) behaviour answers."""

    status: int
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.status == 200


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _parse_json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)


def order_id_of(body: bytes) -> str | None:
    """The body's ``order_id`` as a string, or None when the body has none (or is not a JSON object)."""
    try:
        doc = _parse_json(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    value = doc.get("order_id")
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    return None


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, Decimal | float) and math.isfinite(value)


def _is_identifier(value: object) -> bool:
    """A non-empty string, or an integer (sent as its string)."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def _bad(message: str, field_name: str | None) -> Outcome:
    return Outcome(400, {"error": message, "field": field_name})


# --------------------------------------------------------------------------- the body, field by field


def _check_cart_id(doc: dict[str, Any]) -> Outcome | None:
    cart_id = doc.get("cart_id")
    if cart_id is None:
        return _bad("cart_id is required", "cart_id")
    if not isinstance(cart_id, str) or not cart_id.strip():
        return _bad("cart_id must be a non-empty string", "cart_id")
    if len(cart_id) > 255:
        return _bad("cart_id must be at most 255 characters", "cart_id")
    return None


def _check_order_id(doc: dict[str, Any]) -> Outcome | None:
    if doc.get("order_id") is None:
        return _bad("order_id is required", "order_id")
    if not _is_identifier(doc["order_id"]):
        return _bad("order_id must be a non-empty string", "order_id")
    return None


def _check_currency(doc: dict[str, Any]) -> Outcome | None:
    currency = doc.get("currency_code")
    if currency is None or currency == "":
        return _bad("currency_code is required", "currency_code")
    if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
        return _bad("currency_code must be a three-letter upper-case ISO 4217 code", "currency_code")
    return None


def _check_amounts(doc: dict[str, Any]) -> Outcome | None:
    for name in _MONEY_FIELDS:
        if name in doc and not _is_number(doc[name]):
            return _bad(f"{name} {_PLAIN_NUMBER}", name)
    if "discount_code" in doc and not isinstance(doc["discount_code"], str):
        return _bad("discount_code must be a string", "discount_code")
    return None


def _check_customer(doc: dict[str, Any]) -> Outcome | None:
    if "customer" not in doc:
        return None
    customer = doc["customer"]
    if not isinstance(customer, dict):
        return _bad("customer must be an object", "customer")
    for name in _CUSTOMER_FIELDS:
        if name in customer and not isinstance(customer[name], str):
            return _bad(f"customer.{name} must be a string", f"customer.{name}")
    return None


def _check_item(item: Any, where: str) -> Outcome | None:
    if not isinstance(item, dict):
        return _bad(f"{where} must be an object", where)
    for name in ("sku", "price", "quantity"):
        if item.get(name) is None:
            return _bad(f"{where}.{name} is required", f"{where}.{name}")
    rules: tuple[tuple[str, Callable[[object], bool], str], ...] = (
        ("sku", _is_identifier, "must be a non-empty string"),
        ("price", _is_number, _PLAIN_NUMBER),
        ("quantity", _is_positive_int, "must be a positive integer"),
    )
    for name, is_valid, requirement in rules:
        if not is_valid(item[name]):
            return _bad(f"{where}.{name} {requirement}", f"{where}.{name}")
    if "name" in item and not isinstance(item["name"], str):
        return _bad(f"{where}.name must be a string", f"{where}.name")
    return None


def _check_items(items: Any) -> Outcome | None:
    if items is None:
        return _bad("items is required", "items")
    if not isinstance(items, list) or not items:
        return _bad("items must be a non-empty list", "items")
    for index, item in enumerate(items):
        problem = _check_item(item, f"items[{index}]")
        if problem is not None:
            return problem
    return None


def _validate_order(doc: Any) -> Outcome | None:
    """The 400 answer for a malformed paid-order body, or None when Refersion would accept it."""
    if not isinstance(doc, dict):
        return _bad("request body must be a JSON object", None)
    for check in (_check_cart_id, _check_order_id, _check_currency, _check_amounts, _check_customer):
        problem = check(doc)
        if problem is not None:
            return problem
    return _check_items(doc.get("items"))


# --------------------------------------------------------------------------- the request


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _check_request(
    method: str, route: str, headers: Mapping[str, str], keys: tuple[str, str]
) -> Outcome | None:
    """The answer for a wrong route, method, key pair or media type; None when the body decides."""
    if route != PATH:
        return Outcome(404, {"error": "Not Found"})
    if method != "POST":
        return Outcome(405, {"error": "Method Not Allowed"}, {"Allow": "POST"})
    public_ok = _same(headers.get("Refersion-Public-Key"), keys[0])
    secret_ok = _same(headers.get("Refersion-Secret-Key"), keys[1])
    if not (public_ok and secret_ok):
        return Outcome(401, _UNAUTHORIZED)
    media_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return Outcome(400, {"error": "Content-Type must be application/json", "field": None})
    return None


def evaluate(
    method: str, route: str, headers: Mapping[str, str], body: bytes, keys: tuple[str, str]
) -> Outcome:
    """The normal behaviour of Refersion's endpoint for one request (pure)."""
    problem = _check_request(method, route, headers, keys)
    if problem is not None:
        return problem
    try:
        doc = _parse_json(body)
    except ValueError:  # includes UnicodeDecodeError and json.JSONDecodeError
        return _bad("request body is not valid JSON", None)
    problem = _validate_order(doc)
    if problem is not None:
        return problem
    return Outcome(200, {"status": "ok", "order_id": str(doc["order_id"])})


def default_payload(status: int, order_id: str | None, route: str = PATH) -> dict[str, Any]:
    """The JSON body Refersion would send with ``status`` (for scripted statuses without a body)."""
    if route == CANCEL_PATH:
        return _default_cancel_payload(status, order_id)
    if 200 <= status < 300:
        return {"status": "ok", "order_id": order_id}
    if status in (401, 403):
        return dict(_UNAUTHORIZED) if status == 401 else {"error": "Forbidden: invalid key pair"}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    return {"error": phrase}


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")


# --------------------------------------------------------------------------- POST /v2/conversion/cancel

MAX_CANCEL_ITEMS: Final = 50
INVALID_CREDENTIALS: Final = {"error": "Invalid API credentials (error 2)."}
INVALID_ORDER_ID: Final = {"errors": ["Invalid order ID (error 5)"]}
TOO_MANY_ITEMS: Final = {"errors": [f"Too many items: at most {MAX_CANCEL_ITEMS} per call"]}


@dataclass(frozen=True)
class CancelRequest:
    """A well-formed cancel: the order and the (sku, unit price, quantity) lines to take back."""

    order_id: str
    items: tuple[tuple[str, Decimal, int], ...]


def conversion_id_of(order_id: str | None) -> str:
    """The sandbox's conversion id for an order: stable, so tests can expect it."""
    digest = hashlib.sha256((order_id or "").encode("utf-8", "surrogatepass")).hexdigest()
    return f"conv_{digest[:12]}"


def _cancel_problem(message: str) -> Outcome:
    return Outcome(400, {"errors": [message]})


def _cancel_item_problem(item: Any, where: str) -> str | None:
    if not isinstance(item, dict):
        return f"{where} must be an object"
    if not isinstance(item.get("sku"), str) or not item["sku"].strip():
        return f"{where}.sku must be a non-empty string"
    if not _is_number(item.get("price")):
        return f"{where}.price {_PLAIN_NUMBER}"
    if not _is_positive_int(item.get("quantity")):
        return f"{where}.quantity must be a positive integer"
    return None


def _cancel_items(items: Any) -> tuple[tuple[str, Decimal, int], ...] | Outcome:
    if not isinstance(items, list) or not items:
        return _cancel_problem("items must be a non-empty list")
    for index, item in enumerate(items):
        problem = _cancel_item_problem(item, f"items[{index}]")
        if problem is not None:
            return _cancel_problem(problem)
    if len(items) > MAX_CANCEL_ITEMS:
        return Outcome(429, TOO_MANY_ITEMS)
    return tuple((item["sku"], Decimal(str(item["price"])), int(item["quantity"])) for item in items)


def _cancel_body(body: bytes) -> Outcome | CancelRequest:
    try:
        doc = _parse_json(body)
    except ValueError:
        return _cancel_problem("request body is not valid JSON")
    if not isinstance(doc, dict):
        return _cancel_problem("request body must be a JSON object")
    order_id = doc.get("order_id")
    if not isinstance(order_id, str) or not order_id.strip():
        return _cancel_problem("order_id must be a non-empty string")
    items = _cancel_items(doc.get("items"))
    return items if isinstance(items, Outcome) else CancelRequest(order_id, items)


def check_cancel(
    method: str, headers: Mapping[str, str], body: bytes, keys: tuple[str, str]
) -> Outcome | CancelRequest:
    """Refersion's documented checks of a cancel, in order: method, key pair, body (CONTRACT §9).

    Whether Refersion has a conversion for the order is the sandbox's state, decided by the caller.
    """
    if method != "POST":
        return Outcome(405, {"error": "Method Not Allowed"}, {"Allow": "POST"})
    public_ok = _same(headers.get("Refersion-Public-Key"), keys[0])
    if not (public_ok and _same(headers.get("Refersion-Secret-Key"), keys[1])):
        return Outcome(401, INVALID_CREDENTIALS)
    return _cancel_body(body)


def _default_cancel_payload(status: int, order_id: str | None) -> dict[str, Any]:
    if 200 <= status < 300:
        return {"conversion_id": conversion_id_of(order_id)}
    if status in (401, 403):
        return dict(INVALID_CREDENTIALS)
    if status == 422:
        return dict(INVALID_ORDER_ID)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    return {"errors": [phrase]}
