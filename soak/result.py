"""The soak's result: every figure the accounting found, and the guarantees checked on them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from soak.aws_phases import AwsEffects
from soak.kills import Kill
from soak.settings import ANSWERED, DONE_MARK, DROP_AFTER, KILL, LATE_TIMEOUT

Check = tuple[bool, str]


@dataclass
class SoakResult:
    """Every figure of one soak; ``checks`` holds the guarantees once ``check()`` ran."""

    orders: int
    seed: int
    kills_requested: int
    cores: int
    wall_seconds: float
    overrides: dict[str, str]
    sent: Counter[str]
    valid_ids: frozenset[str]
    invalid_ids: frozenset[str]
    delivered: int  # unique valid order ids accepted at the sandbox
    undelivered: list[str]
    lost: list[str]
    quarantined: Counter[tuple[str, str]]  # (outcome, reason) -> orders quarantined with it
    quarantine_copies: int  # quarantined messages beyond one per order
    quarantine_copies_unexplained: list[str]  # ... of orders that were not in a killed batch
    redriven: list[str]  # order ids of messages the queue's redrive policy moved to the DLQ
    redriven_unexplained: list[str]
    invalid_not_quarantined: list[str]
    invalid_posted: list[str]
    unexpected_accepted: list[str]
    non_orders_on_queue: int
    requests: int
    requests_by_fault: Counter[str]
    duplicates_total: int
    duplicates_by_cause: Counter[str]  # drop_after / timeout / kill / answered (unambiguous)
    ambiguous_events: Counter[str]  # accepted posts without an answer, by cause
    maybe_received_lines: int
    no_answer_requests: int  # requests dropped (before or after) or answered after the timeout
    outcomes: Counter[str]  # outcome log lines of the poller's invocations
    killed_outcomes: Counter[str]  # outcome lines the killed invocations wrote before dying
    retry_reasons: Counter[str]
    invocations: int
    invocation_errors: list[str]
    kills: list[Kill]
    kill_attempts: list[str]
    left_behind: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    # The AWS-fault phases (soak/aws_phases.py); empty otherwise.
    aws_phase: str = ""
    aws: AwsEffects | None = None
    done_marks_not_written: int = 0  # done marks (idempotency COMPLETED) that never took effect
    quarantine_copies_aws: int = 0  # DLQ copies of dead-letter sends that took effect unanswered
    longest_invocation_seconds: float = 0.0
    # A refund or confirmations run (soak/extras.py): its name and its own lines for the printout.
    extra: str = ""
    extra_lines: list[str] = field(default_factory=list)

    @property
    def duplicates_unambiguous(self) -> int:
        return self.duplicates_by_cause[ANSWERED]

    @property
    def in_flight_at_kills(self) -> int:
        return sum(kill.in_flight for kill in self.kills)

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.checks)

    def failures(self) -> list[str]:
        return [text for ok, text in self.checks if not ok]


def _some(items: Iterable[str], limit: int = 5) -> str:
    shown = list(items)
    if not shown:
        return ""
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return "(" + ", ".join(shown[:limit]) + more + ")"


def _delivery_checks(result: SoakResult) -> list[Check]:
    quarantined_invalid = len(result.invalid_ids) - len(result.invalid_not_quarantined)
    return [
        (not result.lost, f"lost = {len(result.lost)} {_some(result.lost)}".rstrip()),
        (
            not result.undelivered,
            f"every valid order delivered: {result.delivered}/{len(result.valid_ids)} "
            f"{_some(result.undelivered)}".rstrip(),
        ),
        (
            not result.invalid_not_quarantined and not result.invalid_posted,
            f"every invalid order quarantined with a reason: {quarantined_invalid}/{len(result.invalid_ids)}"
            f", posted to Refersion: {len(result.invalid_posted)}",
        ),
        (
            not result.quarantine_copies_unexplained,
            f"quarantined twice: {result.quarantine_copies} message(s), each of a record in a killed batch "
            f"or of a dead-letter send that took effect unanswered ({result.quarantine_copies_aws}) "
            f"(unexplained: {len(result.quarantine_copies_unexplained)})",
        ),
        (
            not result.unexpected_accepted and result.non_orders_on_queue == 0,
            f"nothing else credited ({len(result.unexpected_accepted)}), no non-order event on the queue "
            f"({result.non_orders_on_queue})",
        ),
    ]


def _duplicate_checks(result: SoakResult) -> list[Check]:
    ambiguous = sum(result.ambiguous_events.values())
    checks: list[Check] = []
    after_done_mark = result.duplicates_by_cause[DONE_MARK]
    if result.aws is not None:
        checks.append(
            (
                after_done_mark <= result.done_marks_not_written,
                f"duplicates after a done mark not written (AWS fault) = {after_done_mark} "
                f"<= done marks the proxy saw never take effect ({result.done_marks_not_written})",
            )
        )
    checks += [
        (
            result.duplicates_unambiguous == 0,
            f"duplicates at the sandbox after 5xx, 429, drop_before, slow or answered posts = "
            f"{result.duplicates_unambiguous}",
        ),
        (
            result.duplicates_total - after_done_mark <= ambiguous,
            f"duplicates at the sandbox ({result.duplicates_total}, less {after_done_mark} after a done mark "
            f"not written) <= posts processed without an answer "
            f"({ambiguous}: drop_after {result.ambiguous_events[DROP_AFTER]} + late timeouts "
            f"{result.ambiguous_events[LATE_TIMEOUT]} + in flight at kills {result.ambiguous_events[KILL]})",
        ),
        (
            len(result.kills) >= result.kills_requested,
            f"invocations killed mid-batch: {len(result.kills)} of {result.kills_requested}",
        ),
    ]
    checks.extend(
        (
            kill.duplicates <= kill.in_flight and kill.accepted_before_kill >= 1 and kill.in_flight >= 1,
            f"kill {kill.number}: duplicates {kill.duplicates} <= requests in flight at the kill "
            f"{kill.in_flight} (after {kill.accepted_before_kill} post(s) accepted and recorded)",
        )
        for kill in result.kills
    )
    return checks


def _run_checks(result: SoakResult) -> list[Check]:
    return [
        (
            not result.redriven_unexplained,
            f"messages moved to the DLQ by the redrive policy: {len(result.redriven)}, of orders never "
            f"credited: {len(result.redriven_unexplained)}",
        ),
        (not result.invocation_errors, f"whole-batch failures: {len(result.invocation_errors)}"),
        (not result.problems, f"run problems: {len(result.problems)}"),
        (not result.left_behind, f"left behind: {len(result.left_behind)} thread(s) or socket(s)"),
    ]


def check(result: SoakResult) -> None:
    """The guarantees, each a PASS or FAIL line (appended to ``result.checks``)."""
    for checks in (_delivery_checks, _duplicate_checks, _run_checks):
        result.checks.extend(checks(result))
