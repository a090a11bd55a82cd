"""Shared data of the confirmation tests: the token, Refersion's conversion payload, Function URL events."""

from __future__ import annotations

import base64
import json
from typing import Any

TOKEN = "tokCURRENTa1b2c3d4e5f6g7h8i9j0kLMNOPQRSTUVWXyz0123456789abcdEF01"
PREVIOUS_TOKEN = "tokPREVIOUSz9y8x7w6v5u4t3s2r1q0pONMLKJIHGFEDCBA9876543210zyxwVU"
# The customer details a conversion webhook may carry: never stored, never logged.
CUSTOMER_EMAIL = "buyer.confirm@example.net"
CUSTOMER_IP = "198.51.100.7"
# What the confirmation tests check absent from every log line.
NEVER_LOGGED_HERE = (TOKEN, PREVIOUS_TOKEN, CUSTOMER_EMAIL, CUSTOMER_IP)


def conversion_payload(
    conversion_id: str | int = "9001", order_id: str | int = "20150401102883", **changes: Any
) -> dict[str, Any]:
    """Refersion's conversion webhook body, with customer and affiliate details it may carry."""
    payload: dict[str, Any] = {
        "id": conversion_id,
        "order_id": order_id,
        "status": "PENDING",
        "affiliate": {"id": 77, "first_name": "Ann", "email": "affiliate@example.net"},
        "total": "12.75",
        "commission_total": 1.28,
        "currency": "USD",
        "created": "2026-11-20 10:00:03",
        "is_recurring": False,
        "subscription_id": None,
        "customer": {"email": CUSTOMER_EMAIL, "first_name": "Bea", "ip_address": CUSTOMER_IP},
    }
    payload.update(changes)
    return payload


def url_event(
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    *,
    path: str = f"/{TOKEN}",
    method: str = "POST",
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """A Lambda Function URL request (payload format 2.0)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    text: str | None
    if raw is None:
        text = None
    elif base64_encoded:
        text = base64.b64encode(raw).decode()
    else:
        text = raw.decode("utf-8", "surrogatepass")
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": text,
        "isBase64Encoded": base64_encoded,
    }
