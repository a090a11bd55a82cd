"""The seed page's example (shared/seed/refersion-integration.txt), defined once for every test."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

SEED_EVENT_FILE = Path(__file__).resolve().parents[1] / "events" / "datafly" / "seed-order.json"

# The request body printed on the seed page, verbatim.
SEED_BODY_JSON = """{
  "cart_id": "DDXqfBngTWuX8N8Asqr2mY3RkmHCXdM7Vz6mdHkjwrEnN5zyRY",
  "order_id": "20150401102883",
  "currency_code": "USD",
  "shipping": 9.99,
  "tax": 0.57,
  "discount": 2.25,
  "discount_code": "HOLIDAY1",
  "customer": {
    "first_name": "John",
    "last_name": "Doe",
    "email": "jdoe@domain.com",
    "ip_address": "234.192.4.75"
  },
  "items": [
    { "sku": "PROD_A", "name": "Product A", "price": 5.50, "quantity": 2 }
  ]
}"""


def seed_body() -> dict[str, Any]:
    """The seed's body with amounts as Decimal, so 5.5 == 5.50 but 5.499999 != 5.5."""
    body: dict[str, Any] = json.loads(SEED_BODY_JSON, parse_float=Decimal)
    return body


@cache
def _seed_event_text() -> str:
    return SEED_EVENT_FILE.read_text()


def seed_event(**property_changes: Any) -> dict[str, Any]:
    """The seed's track call (with its identify traits and IP) as a Datafly event; a fresh copy."""
    event: dict[str, Any] = json.loads(_seed_event_text())
    event["properties"].update(copy.deepcopy(property_changes))
    return event
