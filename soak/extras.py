"""What a soak run can add to the plain soak (soak/run.py): the refund run and the confirmations run.

A ``SoakExtra`` adds events to the plan, template parameters and environment overrides to the stack,
acts on the run as it goes (``tick``: an outage, say), observes the stack before it stops, and then adds
its own table lines and PASS/FAIL checks to the result. The plain soak runs with none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from soak.plan import Planned

if TYPE_CHECKING:
    from local.stack import LocalStack
    from soak.accounting import Observed
    from soak.result import SoakResult


class SoakExtra:
    """No-op defaults; subclasses override what they need."""

    name = ""
    parameters: Mapping[str, str] = {}
    overrides: Mapping[str, str] = {}

    def extend_plan(self, plan: list[Planned], seed: int) -> list[Planned]:
        return plan

    def started(self, stack: LocalStack, seed: int) -> None:
        """After the stack started, before anything is published."""

    def tick(self, stack: LocalStack, published: int, planned: int, kills_done: bool) -> None:
        """Once per turn of the run's loop."""

    def done(self) -> bool:
        """Whether the run may end (once the queue is drained)."""
        return True

    def observe(self, stack: LocalStack, observed: Observed) -> None:
        """Before the stack stops: take what the accounting needs."""

    def stopped(self) -> None:
        """After the stack stopped: release what ``started`` made."""

    def account(self, result: SoakResult) -> None:
        """Add table lines (``result.extra_lines``) and checks (``result.checks``)."""
