"""The refund run (issue 11): the soak with EnableRefunds=true, refunds in the plan and an outage.

Refunds (soak/refund_plan.py: full, partial, re-published, published before their order) go through the
same fault mix as the orders: the sandbox's faults apply to its cancel path too. Once the kills are done
and OUTAGE_AT of the plan is published, the sandbox answers 503 to everything for OUTAGE_SECONDS:
orders stay undelivered, so refunds of orders the relay has seen wait for them (CONTRACT §9).

Overrides: REFUND_WAIT_MINUTES=2 (an early refund waits at most that for its order to be seen; it is
published a few events before it); RETRY_MAX_DELAY_SECONDS=8, so that the queue's 12 receives span
more than the outage (1 + 4 + 8 + 8 ... s) and a refund waiting through it is not moved to the
dead-letter queue by the redrive policy; and the sandbox answers a cancel 422 for 1 s after it accepted
the order (Refersion processes orders asynchronously: the relay waits).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from local.sandbox import RefersionSandbox
from soak.extras import SoakExtra
from soak.kills import Attempt, Kill
from soak.lines import is_outcome_line, order_id_of_body
from soak.plan import Planned
from soak.refund_accounting import RefundFigures, account_refunds, refund_checks, refund_table
from soak.refund_plan import with_refunds
from soak.settings import FAULT_DELAY_SECONDS, FAULT_WEIGHTS

if TYPE_CHECKING:
    from local.stack import LocalStack
    from soak.accounting import Observed
    from soak.result import SoakResult

OUTAGE_AT: Final = 0.6  # share of the plan published when the outage begins (once the kills are done)
OUTAGE_SECONDS: Final = 20.0
PROCESSING_SECONDS: Final = 1.0
REFUND_OVERRIDES: Final[Mapping[str, str]] = {"REFUND_WAIT_MINUTES": "2", "RETRY_MAX_DELAY_SECONDS": "8"}


class RefundExtra(SoakExtra):
    name = "refunds"
    parameters: Mapping[str, str] = {"EnableRefunds": "true"}
    overrides = REFUND_OVERRIDES

    def __init__(self, outage_seconds: float = OUTAGE_SECONDS) -> None:
        self.outage_seconds = outage_seconds
        self.plan: list[Planned] = []
        self.seed = 0
        self.sandbox: RefersionSandbox | None = None
        self.outage_began: float | None = None
        self.outage_ended: float | None = None
        self.figures: RefundFigures | None = None

    def extend_plan(self, plan: list[Planned], seed: int) -> list[Planned]:
        self.plan, self.seed = with_refunds(plan, seed), seed
        return self.plan

    def started(self, stack: LocalStack, seed: int) -> None:
        self.sandbox = stack.sandbox
        stack.sandbox.set_processing_delay(PROCESSING_SECONDS)

    def tick(self, stack: LocalStack, published: int, planned: int, kills_done: bool) -> None:
        now = time.monotonic()
        if self.outage_began is None and kills_done and published >= planned * OUTAGE_AT:
            stack.sandbox.set_fault_mix({"503": 1}, seed=self.seed)
            self.outage_began = now
        elif (
            self.outage_ended is None
            and self.outage_began is not None
            and now >= self.outage_began + self.outage_seconds
        ):
            stack.sandbox.set_fault_mix(FAULT_WEIGHTS, seed=self.seed + 31, fault_delay=FAULT_DELAY_SECONDS)
            self.outage_ended = now

    def done(self) -> bool:
        return self.outage_ended is not None

    def observe(self, stack: LocalStack, observed: Observed) -> None:
        victims: list[Kill | Attempt] = [*observed.kills, *observed.kill_attempts]
        lines = [line for inv in observed.invocations for line in inv.logs if is_outcome_line(line)]
        lines += [line for victim in victims for line in victim.logs]
        dead = {_order_id_of(m) for m in observed.dead_letters}
        self.figures = account_refunds(
            self.plan, observed.received, stack.sandbox.net_quantities(), lines, victims, dead
        )
        if self.outage_began is not None:
            end = self.outage_ended or time.monotonic()
            self.figures.outage_seconds = end - self.outage_began
            self.figures.outage_requests = sum(
                1 for r in observed.received if r.fault == "503" and self.outage_began <= r.at <= end
            )

    def account(self, result: SoakResult) -> None:
        if self.figures is None:
            result.checks.append((False, "refunds: nothing observed"))
            return
        result.extra_lines.extend(refund_table(self.figures))
        result.checks.extend(refund_checks(self.figures))


def _order_id_of(message: Mapping[str, object]) -> str:
    attributes = message.get("MessageAttributes")
    if isinstance(attributes, dict) and "order_id" in attributes:
        return str(attributes["order_id"].get("StringValue"))
    return order_id_of_body(str(message.get("Body", ""))) or "?"
