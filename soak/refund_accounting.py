"""The refund run's accounting (issue 11): each refund applied once, none lost, no order over-cancelled.

At the sandbox a cancel is applied when it is accepted (answered 2xx, or processed and then its answer
lost). The relay sends a cancel again only when it went unanswered (CONTRACT §9, §11): dropped after
processing, answered after the relay's timeout, or in flight when an invocation was killed. Such a resend
applies the cancel twice: it is counted by cause, and every other second application is a failure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from local.sandbox import CANCEL_PATH, PATH, Received
from soak.kills import Attempt, Kill
from soak.plan import Planned
from soak.refund_plan import (
    EARLY_KINDS,
    REFUND_COPY,
    REFUND_KINDS,
    Quantities,
    ordered_quantities,
    refunded_quantities,
)
from soak.settings import ANSWERED, DROP_AFTER, KILL, LATE_TIMEOUT, VALID

CREDITED_TWICE = "order credited twice (see the duplicates above)"
WAIT_REASONS = (
    ("seen but is not delivered", "order seen, not delivered yet (outage, faults)"),
    ("has not seen this order", "order not seen yet (refund before its order)"),
    ("asynchronously", "422 while Refersion processes the order"),
    ("may still be in flight", "a cancel of it unanswered, maybe in flight"),
    ("another refund", "another refund of the order being applied"),
)

Check = tuple[bool, str]


@dataclass
class RefundFigures:
    sent: Counter[str]
    refunds: int  # logical refunds (re-published copies excluded)
    applied_once: int = 0
    applied_twice_by_cause: Counter[str] = field(default_factory=Counter)
    applied_twice_unexplained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # never applied, not in the dead-letter queue
    in_dlq: list[str] = field(default_factory=list)
    unexpected_cancels: list[str] = field(default_factory=list)  # cancels of orders never refunded
    cancel_requests: Counter[str] = field(default_factory=Counter)  # by the sandbox's answer
    outcomes: Counter[str] = field(default_factory=Counter)  # refund outcome lines
    waiting_reasons: Counter[str] = field(default_factory=Counter)
    net_equal: int = 0
    net_differs_by_cause: Counter[str] = field(default_factory=Counter)
    net_unexplained: list[str] = field(default_factory=list)
    below_zero: list[str] = field(default_factory=list)
    below_zero_unexplained: list[str] = field(default_factory=list)
    outage_seconds: float = 0.0
    outage_requests: int = 0


def account_refunds(  # noqa: PLR0917 - what the run observed, each a part of its own
    plan: Sequence[Planned],
    received: Sequence[Received],
    net: Mapping[str, Mapping[str, int]],
    lines: Sequence[Mapping[str, Any]],
    victims: Sequence[Kill | Attempt],
    dead_letter_ids: set[str],
) -> RefundFigures:
    orders = {p.order_id: p for p in plan if p.kind == VALID and p.order_id}
    refunds = {p.order_id: p for p in plan if p.kind in REFUND_KINDS and p.kind != REFUND_COPY and p.order_id}
    figures = RefundFigures(
        sent=Counter(p.kind for p in plan if p.kind in REFUND_KINDS), refunds=len(refunds)
    )
    cancels = [(i, r) for i, r in enumerate(received) if r.route == CANCEL_PATH]
    figures.cancel_requests = Counter(r.fault or "ok" for _, r in cancels)
    causes_by_order = _applied_causes(cancels, victims)
    figures.unexpected_cancels = sorted(set(causes_by_order) - set(refunds))
    twice_cause: dict[str, str] = {}
    for order_id in refunds:
        causes = causes_by_order.get(order_id, [])
        if not causes:
            (figures.in_dlq if order_id in dead_letter_ids else figures.lost).append(order_id)
            continue
        figures.applied_once += 1
        # Every application but the last is one too many: explained when it went unanswered.
        for why in causes[:-1]:
            if why == ANSWERED:
                figures.applied_twice_unexplained.append(order_id)
            else:
                figures.applied_twice_by_cause[why] += 1
                twice_cause[order_id] = why
    credits = Counter(r.order_id for r in received if r.route == PATH and r.accepted and r.order_id)
    for order_id, order in orders.items():
        ordered = ordered_quantities(order.detail)
        refund = refunds.get(order_id)
        refunded = refunded_quantities(refund.detail, ordered) if refund else {}
        _compare_net(
            figures, order_id, ordered, refunded, net.get(order_id, {}), credits[order_id], twice_cause
        )
    refund_lines = [line for line in lines if line.get("kind") == "refund"]
    figures.outcomes = Counter(str(line["outcome"]) for line in refund_lines)
    for line in refund_lines:
        if line["outcome"] == "waiting":
            reason = str(line.get("reason", ""))
            label = next((label for key, label in WAIT_REASONS if key in reason), "other")
            figures.waiting_reasons[label] += 1
    return figures


def _applied_causes(
    cancels: Sequence[tuple[int, Received]], victims: Sequence[Kill | Attempt]
) -> dict[str, list[str]]:
    """order id -> why each applied cancel may have gone unanswered (or ANSWERED), in arrival order."""
    applied: dict[str, list[str]] = defaultdict(list)
    for _, request in cancels:
        if not request.accepted or request.order_id is None:
            continue
        if request.fault == "drop_after":
            why = DROP_AFTER
        elif request.fault == "timeout":
            why = LATE_TIMEOUT
        elif _unanswered_at_kill(request, victims):
            why = KILL
        else:
            why = ANSWERED
        applied[request.order_id].append(why)
    return applied


def _unanswered_at_kill(request: Received, victims: Sequence[Kill | Attempt]) -> bool:
    for victim in victims:
        first, last = victim.connections
        if first < request.connection_id <= last:
            recorded = {
                str(line.get("order_id"))
                for line in victim.logs
                if line.get("kind") == "refund" and line.get("outcome") in ("delivered", "waiting")
            }
            return request.order_id not in recorded
    return False


def _compare_net(  # noqa: PLR0917
    figures: RefundFigures,
    order_id: str,
    ordered: Quantities,
    refunded: Quantities,
    at_sandbox: Mapping[str, int],
    credits: int,
    twice_cause: Mapping[str, str],
) -> None:
    expected = {sku: quantity - refunded.get(sku, 0) for sku, quantity in ordered.items()}
    actual = {sku: at_sandbox.get(sku, 0) for sku in {*expected, *at_sandbox}}
    expected_all = {sku: expected.get(sku, 0) for sku in actual}
    if any(quantity < 0 for quantity in actual.values()):
        figures.below_zero.append(order_id)
        if order_id not in twice_cause:
            figures.below_zero_unexplained.append(order_id)
    if actual == expected_all:
        figures.net_equal += 1
    elif order_id in twice_cause:
        figures.net_differs_by_cause[f"cancel applied twice after {twice_cause[order_id]}"] += 1
    elif credits > 1:
        figures.net_differs_by_cause[CREDITED_TWICE] += 1
    else:
        figures.net_unexplained.append(order_id)


def refund_checks(figures: RefundFigures) -> list[Check]:
    twice = sum(figures.applied_twice_by_cause.values())
    causes = ", ".join(f"{k} {v}" for k, v in sorted(figures.applied_twice_by_cause.items())) or "none"
    differs = ", ".join(f"{k}: {v}" for k, v in sorted(figures.net_differs_by_cause.items())) or "none"
    early = figures.sent[EARLY_KINDS[0]] + figures.sent[EARLY_KINDS[1]]
    waited = figures.waiting_reasons[WAIT_REASONS[0][1]]
    return [
        (
            not figures.applied_twice_unexplained and not figures.unexpected_cancels,
            f"refunds applied once: {figures.applied_once}/{figures.refunds}; applied again only after an "
            f"unanswered cancel: {twice} ({causes}); otherwise: {len(figures.applied_twice_unexplained)}; "
            f"cancels of orders never refunded: {len(figures.unexpected_cancels)}",
        ),
        (
            not figures.lost and not figures.in_dlq,
            f"refunds lost = {len(figures.lost)}, in the dead-letter queue = {len(figures.in_dlq)} "
            f"(of {figures.refunds}, {early} published before their order, "
            f"{figures.sent[REFUND_COPY]} re-published)",
        ),
        (
            not figures.below_zero_unexplained,
            f"over-cancelled (net below 0) = {len(figures.below_zero)}, each after an unanswered cancel "
            f"(unexplained: {len(figures.below_zero_unexplained)})",
        ),
        (
            not figures.net_unexplained,
            f"net quantity at the sandbox = ordered - refunded for {figures.net_equal} order(s); differs for "
            f"{sum(figures.net_differs_by_cause.values())} ({differs}); unexplained: "
            f"{len(figures.net_unexplained)}",
        ),
        (
            waited > 0 and figures.outage_seconds > 0,
            f"refunds waited for their order: {waited} waiting outcome(s) "
            f"while the order was seen but not delivered (outage of {figures.outage_seconds:.0f} s)",
        ),
    ]


def refund_table(figures: RefundFigures) -> list[str]:
    rows: list[tuple[str, object]] = [("refunds published", sum(figures.sent.values()))]
    rows += [(f"  {kind}", figures.sent[kind]) for kind in REFUND_KINDS]
    rows += [
        ("refunds applied at the sandbox (at least once)", f"{figures.applied_once} / {figures.refunds}"),
        ("  applied again after an unanswered cancel", sum(figures.applied_twice_by_cause.values())),
    ]
    rows += [(f"    after {cause}", n) for cause, n in sorted(figures.applied_twice_by_cause.items())]
    rows += [
        ("  applied again otherwise", len(figures.applied_twice_unexplained)),
        ("refunds lost", len(figures.lost)),
        ("refunds in the dead-letter queue", len(figures.in_dlq)),
        ("orders over-cancelled (net below 0)", len(figures.below_zero)),
        ("  not after an unanswered cancel", len(figures.below_zero_unexplained)),
        ("orders with net = ordered - refunded", figures.net_equal),
    ]
    rows += [(f"  differs: {cause}", n) for cause, n in sorted(figures.net_differs_by_cause.items())]
    rows += [("  differs, unexplained", len(figures.net_unexplained))]
    rows += [("refund outcome lines", sum(figures.outcomes.values()))]
    rows += [(f"  {outcome}", n) for outcome, n in sorted(figures.outcomes.items())]
    rows += [(f"    waiting: {reason}", n) for reason, n in figures.waiting_reasons.most_common()]
    rows += [("cancel requests at the sandbox, by answer", sum(figures.cancel_requests.values()))]
    rows += [(f"  {fault}", n) for fault, n in sorted(figures.cancel_requests.items())]
    rows += [
        (f"requests answered 503 during the outage ({figures.outage_seconds:.0f} s)", figures.outage_requests)
    ]
    width = max(len(label) for label, _ in rows) + 2
    rule = "  " + "-" * (width + 10)
    return [
        "  Refunds (issue 11)",
        rule,
        *(f"  {label.ljust(width)}{value!s:>10}" for label, value in rows),
        rule,
    ]
