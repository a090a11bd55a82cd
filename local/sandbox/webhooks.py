"""Refersion's outbound conversion webhooks, imitated by the sandbox (CONTRACT §10).

Refersion announces a conversion only for an order an affiliate referred. Here a cart is "referred" once
a click was recorded for it (``POST /_sandbox/clicks {"cart_id": ...}`` or ``record_click``). Each paid
order the sandbox accepts for such a cart sends, ``delay`` seconds later, Refersion's conversion payload
to the configured URL (the receiver's URL with its token as the last path segment), with a fresh
conversion id per accepted post: an order accepted twice sends two webhooks with two ids, which is the
double credit the reconciliation report lists.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

_log = logging.getLogger("local.sandbox")

AFFILIATE_ID: Final = "4242"
_COMMISSION_RATE: Final = Decimal("0.10")


@dataclass(frozen=True)
class SentWebhook:
    conversion_id: str
    order_id: str
    status: int | None  # what the receiver answered; None when it could not be reached


class ConversionWebhooks:
    """Clicks recorded, webhooks scheduled and sent. Thread-safe; ``stop()`` cancels pending ones."""

    def __init__(self, url: str | None = None, delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._url = url
        self._delay = delay
        self._clicks: set[str] = set()
        self._ids = itertools.count(700001)
        self._timers: set[threading.Timer] = set()
        self._sent: list[SentWebhook] = []

    def configure(self, url: str | None, delay: float = 0.0) -> None:
        """Where to send (None: nowhere) and how many seconds after the order is accepted."""
        if delay < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._url, self._delay = url, float(delay)

    def record_click(self, cart_id: str) -> None:
        with self._lock:
            self._clicks.add(str(cart_id))

    def sent(self) -> list[SentWebhook]:
        with self._lock:
            return list(self._sent)

    def order_accepted(self, body: bytes) -> None:
        """Called by the sandbox for every paid order it accepts: schedules a webhook if referred."""
        order = _json_object(body)
        cart_id, order_id = order.get("cart_id"), order.get("order_id")
        with self._lock:
            if self._url is None or cart_id is None or str(cart_id) not in self._clicks or order_id is None:
                return
            payload = conversion_payload(str(next(self._ids)), str(order_id), order)
            timer = threading.Timer(self._delay, self._send, (self._url, payload))
            timer.daemon = True
            self._timers.add(timer)
        timer.start()

    def stop(self) -> None:
        with self._lock:
            timers, self._timers = set(self._timers), set()
        for timer in timers:
            timer.cancel()

    def _send(self, url: str, payload: dict[str, Any]) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
            self._sent.append(SentWebhook(str(payload["id"]), str(payload["order_id"]), status))
        _log.debug("conversion webhook %s for order %s -> %s", payload["id"], payload["order_id"], status)


def conversion_payload(conversion_id: str, order_id: str, order: dict[str, Any]) -> dict[str, Any]:
    """Refersion's documented conversion webhook body for an accepted paid order."""
    total = _order_total(order)
    return {
        "id": conversion_id,
        "order_id": order_id,
        "status": "PENDING",
        "affiliate": {"id": AFFILIATE_ID},
        "total": str(total),
        "commission_total": str((total * _COMMISSION_RATE).quantize(Decimal("0.01"))),
        "currency": order.get("currency_code"),
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "is_recurring": bool(order.get("is_subscription", False)),
        "subscription_id": order.get("subscription_id"),
    }


def _order_total(order: dict[str, Any]) -> Decimal:
    total = Decimal(0)
    try:
        for item in order.get("items") or []:
            total += Decimal(str(item.get("price", 0))) * int(item.get("quantity", 1))
        total += Decimal(str(order.get("shipping") or 0)) + Decimal(str(order.get("tax") or 0))
        total -= Decimal(str(order.get("discount") or 0))
    except (InvalidOperation, TypeError, ValueError, AttributeError):
        return Decimal(0)
    return total


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
