"""The refund part of `make preview`: the cancel calls a refund would make (CONTRACT §9), nothing sent.

The plan comes from the relay's own pure planning (mapping.refunds.plan_refund) against the view of a
delivered order, so the bodies shown are the ones the relay would post, one call per attempt.
"""

from __future__ import annotations

import json
from typing import TextIO

from mapping import InvalidEvent, RefersionOrder
from mapping.order_state import OrderView
from mapping.refund_event import parse_refund
from mapping.refunds import CancelPlan, RefundDuplicate, RefundSkipped, plan_refund


def delivered_view(decision: object) -> OrderView | None:
    """The order state of an order just delivered with this body, or None when it is not an order."""
    if isinstance(decision, RefersionOrder):
        return OrderView.from_delivered(decision)
    return None


def report_refund(label: str, event: dict[str, object], delivered: OrderView | None, out: TextIO) -> bool:
    """Print what the refund would do against `delivered` (or an order never seen); False when invalid."""
    try:
        refund = parse_refund(event)
    except InvalidEvent as exc:
        return _invalid(label, exc, out)
    print(
        f"{label}: refund of order {refund.order_id} (with REFUNDS_ENABLED=true; dropped otherwise)", file=out
    )
    if delivered is None:
        print(
            "  the relay never delivered this order as far as this preview knows (give it with --delivered):"
            " the refund waits for it up to REFUND_WAIT_MINUTES, then:",
            file=out,
        )
    try:
        verdict = plan_refund(refund, delivered)
    except InvalidEvent as exc:
        return _invalid(label, exc, out)
    if isinstance(verdict, RefundDuplicate | RefundSkipped):
        word = "duplicate" if isinstance(verdict, RefundDuplicate) else "skipped"
        print(f"  {word}: {verdict.reason}", file=out)
        return True
    _print_plan(verdict, out)
    return True


def _print_plan(plan: CancelPlan, out: TextIO) -> None:
    calls = len(plan.calls)
    given = " (prices as the event gives them)" if plan.as_given else " (at the delivered prices)"
    print(
        f"  would cancel in {calls} call(s) of POST {{REFERSION_API_URL}}/conversion/cancel{given}:", file=out
    )
    for index in range(calls):
        body = json.loads(plan.body(index).to_json_bytes())
        print(json.dumps(body, indent=2, ensure_ascii=False), file=out)


def _invalid(label: str, exc: InvalidEvent, out: TextIO) -> bool:
    print(f"{label}: invalid (set aside on the dead-letter queue)", file=out)
    for reason in exc.reasons:
        print(f"  {reason}", file=out)
    return False
