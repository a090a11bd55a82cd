"""How the order state and confirmations are written as DynamoDB items (low-level attribute values).

Exact decimals travel as strings, never as floats; times as fixed-width UTC strings (order_state).

Order-state item (id "order-state#<order id>"; see order_state.state_key):
  kind S "order-state" | order_id S | version N (writes so far) | write_id S (token of the last write)
  expiration N (epoch seconds: last write + ORDER_RECORD_DAYS) | seen_at S | post_began_at S
  last_post S "answered"/"unanswered" | last_post_at S
  delivered_at S | delivered_day S "YYYY-MM-DD" (for a future GSI: delivered_day, delivered_at)
  body_digest S (sha256 hex) | currency S | delivered_items L of M {sku S, price S, quantity N}
  cancelled_items L of M {sku S, price S, quantity N} (totals by sku and price) | refund_keys SS
  cancel_plan M {plan S (mapping.CancelPlan.to_dict() as JSON), next_call N, began_at S (optional)}
  confirmations SS (conversion ids, the link to the confirmation items)
  rejected_records SS (JSON {"record_id", "status", "reason", "at"}: a 4xx per SQS messageId, issue 13)
Confirmation item (id "confirmation#<conversion id>"):
  kind S "confirmation" | conversion_id S | order_id S | status S | affiliate_id S (optional)
  received_at S | received_day S "YYYY-MM-DD" | expiration N
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mapping.refunds import CancelPlan

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from handler.order_state import (
    Confirmation,
    Delivered,
    ItemLine,
    LastPost,
    OrderState,
    RejectedRecord,
    confirmation_key,
    format_time,
    parse_time,
    storable_text,
)

Item = dict[str, Any]


def text_value(text: str) -> dict[str, str]:
    return {"S": text}


def number_value(number: int) -> dict[str, str]:
    return {"N": str(number)}


def names(expression: str) -> dict[str, str]:
    return {f"#{name}": name for name in re.findall(r"#(\w+)", expression)}


def answer_word(answered: bool) -> str:
    return "answered" if answered else "unanswered"


def lines_value(lines: Iterable[ItemLine]) -> dict[str, Any]:
    return {
        "L": [
            {
                "M": {
                    "sku": text_value(line.sku),
                    "price": text_value(str(line.price)),
                    "quantity": number_value(line.quantity),
                }
            }
            for line in lines
        ]
    }


def _lines_from(value: Mapping[str, Any] | None) -> tuple[ItemLine, ...]:
    if not value:
        return ()
    return tuple(
        ItemLine(m["M"]["sku"]["S"], Decimal(m["M"]["price"]["S"]), int(m["M"]["quantity"]["N"]))
        for m in value["L"]
    )


def plan_value(plan: CancelPlan, next_call: int, began_at: datetime | None) -> dict[str, Any]:
    """mapping's plan as its own JSON (prices as decimal strings), with the progress beside it."""
    value: dict[str, Any] = {
        "plan": text_value(json.dumps(plan.to_dict(), separators=(",", ":"))),
        "next_call": number_value(next_call),
    }
    if began_at is not None:
        value["began_at"] = text_value(format_time(began_at))
    return {"M": value}


def _plan_from(value: Mapping[str, Any] | None) -> tuple[CancelPlan | None, int, datetime | None]:
    if not value:
        return None, 0, None
    from mapping.refunds import CancelPlan  # loaded only when a refund's plan is stored

    stored = value["M"]
    plan = CancelPlan.from_dict(json.loads(stored["plan"]["S"]))
    began = stored.get("began_at")
    return plan, int(stored["next_call"]["N"]), None if began is None else parse_time(began["S"])


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _time(item: Mapping[str, Any], name: str) -> datetime | None:
    text = _text(item, name)
    return None if text is None else parse_time(text)


def state_from_item(order_id: str, item: Mapping[str, Any]) -> OrderState:
    last_post_at = _time(item, "last_post_at")
    delivered_at = _time(item, "delivered_at")
    plan, next_call, began_at = _plan_from(item.get("cancel_plan"))
    return OrderState(
        order_id=order_id,
        version=int(item["version"]["N"]) if "version" in item else 0,
        seen_at=_time(item, "seen_at"),
        post_began_at=_time(item, "post_began_at"),
        last_post=LastPost(_text(item, "last_post") == "answered", last_post_at) if last_post_at else None,
        delivered=Delivered(
            at=delivered_at,
            body_digest=_text(item, "body_digest") or "",
            items=_lines_from(item.get("delivered_items")),
            currency=_text(item, "currency") or "",
        )
        if delivered_at
        else None,
        cancelled=_lines_from(item.get("cancelled_items")),
        refund_keys=frozenset(item.get("refund_keys", {}).get("SS", ())),
        cancel_plan=plan,
        cancel_next_call=next_call,
        cancel_began_at=began_at,
        confirmations=frozenset(item.get("confirmations", {}).get("SS", ())),
        rejected_records=tuple(
            sorted(
                (rejected_from_text(text) for text in item.get("rejected_records", {}).get("SS", ())),
                key=lambda rejected: (rejected.at, rejected.record_id),
            )
        ),
    )


_REJECTED_REASON_CHARS = 300


def rejected_text(rejected: RejectedRecord) -> str:
    """One rejected record as a string-set element (JSON, reason cut: it is already masked)."""
    return json.dumps(
        {
            "record_id": storable_text(rejected.record_id),
            "status": rejected.status,
            "reason": storable_text(rejected.reason[:_REJECTED_REASON_CHARS]),
            "at": format_time(rejected.at),
        },
        sort_keys=True,
    )


def rejected_from_text(text: str) -> RejectedRecord:
    data = json.loads(text)
    return RejectedRecord(
        str(data["record_id"]), int(data["status"]), str(data["reason"]), parse_time(str(data["at"]))
    )


def confirmation_item(confirmation: Confirmation, expiration: int) -> Item:
    received = format_time(confirmation.received_at)
    item: Item = {
        "id": text_value(confirmation_key(confirmation.conversion_id)),
        "kind": text_value("confirmation"),
        "conversion_id": text_value(storable_text(confirmation.conversion_id)),
        "order_id": text_value(storable_text(confirmation.order_id)),
        "status": text_value(storable_text(confirmation.status)),
        "received_at": text_value(received),
        "received_day": text_value(received[:10]),
        "expiration": number_value(expiration),
    }
    if confirmation.affiliate_id is not None:
        item["affiliate_id"] = text_value(storable_text(confirmation.affiliate_id))
    return item


def confirmation_from_item(item: Mapping[str, Any]) -> Confirmation:
    return Confirmation(
        conversion_id=str(item["conversion_id"]["S"]),
        order_id=str(item["order_id"]["S"]),
        status=str(item["status"]["S"]),
        affiliate_id=_text(item, "affiliate_id"),
        received_at=parse_time(str(item["received_at"]["S"])),
    )
