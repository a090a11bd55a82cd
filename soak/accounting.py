"""Accounting for every order once the queue is drained: delivered, quarantined, duplicated, lost.

What a duplicate at the sandbox can come from: a post the relay got no answer for (dropped after
processing, answered after the relay's timeout, or in flight when its invocation was killed). Each
accepted post is given one such cause, or ``answered`` when the relay knew the order was credited.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from local.poller import Invocation
from local.sandbox import PATH, Received
from local.stack import FAST_OVERRIDES
from soak.aws_phases import AwsEffects
from soak.kills import Attempt, Kill
from soak.lines import is_outcome_line, order_id_of_body
from soak.plan import Planned
from soak.result import SoakResult
from soak.settings import (
    ANSWERED,
    DONE_MARK,
    DROP_AFTER,
    INVALID,
    KILL,
    LATE_TIMEOUT,
    NON_ORDER,
    SOAK_OVERRIDES,
    VALID,
)

_FAULT_LABELS: Final = {"script_for": "killed batch (scripted)"}


@dataclass
class Observed:
    """What the run left behind to account for."""

    environment: dict[str, str]
    received: list[Received]
    dead_letters: list[dict[str, Any]]
    invocations: list[Invocation]
    kills: list[Kill]
    kill_attempts: list[Attempt]
    problems: list[str]
    aws: AwsEffects | None = None  # the AWS-fault phases' proxy: what its faults did, by order


@dataclass
class _LogFigures:
    """From the relay's outcome lines (what CloudWatch Logs would hold), the subprocesses' included."""

    outcomes: Counter[str]
    killed_outcomes: Counter[str]
    retry_reasons: Counter[str]
    maybe_received: int


@dataclass
class _Unanswered:
    """Posts of the subprocesses a cause other than the fault mix explains."""

    in_flight_at_kill: dict[int, Kill] = field(default_factory=dict)  # index in received -> the kill
    gave_up: set[int] = field(default_factory=set)  # posts a subprocess timed out on (or lost) itself

    def cause(self, index: int, request: Received) -> str:
        """Why this accepted post may be a duplicate: the relay got no answer for it (or it did)."""
        if index in self.in_flight_at_kill:
            return KILL
        if request.fault == "drop_after":
            return DROP_AFTER
        if request.fault == "timeout" or index in self.gave_up:
            return LATE_TIMEOUT  # in a subprocess, also a held post it gave up on before it died
        return ANSWERED


@dataclass
class _Duplicates:
    accepted_by_order: dict[str, list[str]]  # order id -> the cause of each accepted post
    ambiguous: Counter[str]  # accepted posts without an answer, by cause
    by_cause: Counter[str]
    total: int


@dataclass
class _DeadLetters:
    """The dead-letter queue: quarantined by the relay (with outcome and reason), or moved by the redrive."""

    by_reason: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    ids_by_outcome: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    per_order: Counter[str] = field(default_factory=Counter)
    redriven: list[str] = field(default_factory=list)


def _log_figures(
    invocations: Sequence[Invocation], kills: Sequence[Kill], victim_lines: list[Any]
) -> _LogFigures:
    lines = [line for inv in invocations for line in inv.logs if is_outcome_line(line)]
    every_line = [*lines, *victim_lines]
    return _LogFigures(
        outcomes=Counter(str(line["outcome"]) for line in lines),
        killed_outcomes=Counter(str(line["outcome"]) for kill in kills for line in kill.logs),
        retry_reasons=Counter(
            str(line.get("reason", "?")) for line in every_line if line["outcome"] == "retry"
        ),
        maybe_received=sum(1 for line in every_line if line.get("maybe_received") is True),
    )


def _unanswered(received: Sequence[Received], victims: Sequence[Kill | Attempt]) -> _Unanswered:
    """The subprocesses' posts (on the connections they opened), and the ones a killed invocation had no
    answer recorded for when it died: a post is recorded once its record's outcome line is written.
    Also counts each kill's posts, posts in flight and posts accepted before it."""
    found = _Unanswered()
    for victim in victims:
        first, last = victim.connections
        recorded = {str(line.get("order_id")) for line in victim.logs if line.get("attempts")}
        no_answer = {str(line.get("order_id")) for line in victim.logs if line.get("maybe_received") is True}
        for index, request in enumerate(received):
            if not first < request.connection_id <= last:
                continue
            unanswered = request.order_id not in recorded
            if request.order_id in no_answer:
                found.gave_up.add(index)
            if isinstance(victim, Kill):
                victim.posts += 1
                victim.in_flight += unanswered
                victim.accepted_before_kill += request.accepted and not unanswered
                if unanswered:
                    found.in_flight_at_kill[index] = victim
    return found


def _relay_unanswered(invocations: Sequence[Invocation]) -> Counter[str]:
    """Paid-order posts the relay itself logged as unanswered (maybe_received), by order id."""
    return Counter(
        str(line.get("order_id"))
        for inv in invocations
        for line in inv.logs
        if is_outcome_line(line)
        and line.get("maybe_received") is True
        and line.get("kind", "order") == "order"
    )


def _late_answers(causes: list[str], extra: int) -> list[str]:
    """An answer that left the sandbox in time but reached the relay after its deadline (a loaded machine)
    is, for the relay, a post without an answer: `extra` of them (the relay's unanswered posts of the order
    beyond those the sandbox itself left without an answer) count as late timeouts, not answered posts."""
    for position, why in enumerate(causes):
        if extra == 0:
            break
        if why == ANSWERED:
            causes[position] = LATE_TIMEOUT
            extra -= 1
    return causes


def _duplicates(
    received: Sequence[Received],
    unanswered: _Unanswered,
    done_marks_not_written: Mapping[str, int],
    relay_unanswered: Mapping[str, int],
) -> _Duplicates:
    accepted_by_order: dict[str, list[str]] = defaultdict(list)
    ambiguous: Counter[str] = Counter()
    kill_of_order: dict[str, Kill] = {}
    for index, request in enumerate(received):
        if not request.accepted or request.order_id is None:
            continue
        why = unanswered.cause(index, request)
        accepted_by_order[request.order_id].append(why)
        if why == KILL:
            kill_of_order[request.order_id] = unanswered.in_flight_at_kill[index]
    sandbox_no_answer = Counter(
        r.order_id for r in received if r.fault in ("drop_before", "drop_after", "timeout") and r.order_id
    )
    for order_id, causes in accepted_by_order.items():
        _late_answers(causes, max(0, relay_unanswered.get(order_id, 0) - sandbox_no_answer[order_id]))
        ambiguous.update(why for why in causes if why != ANSWERED)
    # An order accepted n times has n - 1 duplicates. Answered posts: the relay knew the order was
    # credited, so a second one is a duplicate it caused. The others explain one duplicate each (all but
    # one of them, when no post of the order was answered).
    by_cause: Counter[str] = Counter()
    for order_id, causes in accepted_by_order.items():
        if len(causes) < 2:
            continue
        answered = causes.count(ANSWERED)
        unanswered_posts = [c for c in causes if c != ANSWERED]
        if answered == 0:
            unanswered_posts = unanswered_posts[:-1]
        # An answered post whose done mark was never written (an AWS fault) explains one duplicate.
        after_done_mark = min(max(0, answered - 1), done_marks_not_written.get(order_id, 0))
        by_cause[DONE_MARK] += after_done_mark
        by_cause[ANSWERED] += max(0, answered - 1) - after_done_mark
        for why in unanswered_posts:
            by_cause[why] += 1
            if why == KILL:
                kill_of_order[order_id].duplicates += 1
    total = sum(len(c) - 1 for c in accepted_by_order.values() if len(c) > 1)
    return _Duplicates(accepted_by_order, ambiguous, by_cause, total)


def _dead_letters(messages: Sequence[Mapping[str, Any]]) -> _DeadLetters:
    found = _DeadLetters()
    for message in messages:
        attributes = {k: str(v.get("StringValue")) for k, v in message.get("MessageAttributes", {}).items()}
        order_id = attributes.get("order_id") or order_id_of_body(str(message["Body"])) or "?"
        if "outcome" in attributes:
            reason = attributes.get("reason", "")
            found.by_reason[(attributes["outcome"], reason)].add(order_id)
            found.per_order[order_id] += 1
            if reason.strip() and reason != "-":
                found.ids_by_outcome[attributes["outcome"]].add(order_id)
        else:
            found.redriven.append(order_id)
    return found


def shown_overrides() -> list[str]:
    return sorted({*FAST_OVERRIDES, *SOAK_OVERRIDES})


def _invocation_errors(invocations: Sequence[Invocation]) -> list[str]:
    return [f"invocation {i.number}: {i.error}" for i in invocations if i.error] + [
        f"invocation {i.number}: delete failed for {len(i.delete_failures)}"
        for i in invocations
        if i.delete_failures
    ]


def account(
    plan: Sequence[Planned], seen: Observed, *, orders: int, seed: int, kills: int, wall: float
) -> SoakResult:
    """Every figure of the result, from what was published and what the run observed."""
    valid_ids = frozenset(p.order_id for p in plan if p.kind == VALID and p.order_id)
    invalid_ids = frozenset(p.order_id for p in plan if p.kind == INVALID and p.order_id)
    # Paid-order posts only: a refund run's cancels are accounted for in soak/refund_accounting.py.
    received = [r for r in seen.received if r.route == PATH]
    victims: list[Kill | Attempt] = [*seen.kills, *seen.kill_attempts]
    logs = _log_figures(seen.invocations, seen.kills, [line for v in victims for line in v.logs])
    aws = seen.aws
    done_marks = aws.done_marks_not_written if aws else Counter[str]()
    dlq_unanswered = aws.dlq_copies_unanswered if aws else Counter[str]()
    duplicates = _duplicates(
        received, _unanswered(received, victims), done_marks, _relay_unanswered(seen.invocations)
    )
    dead = _dead_letters(seen.dead_letters)
    accepted_ids = set(duplicates.accepted_by_order)
    dlq_ids = set().union(*dead.ids_by_outcome.values(), dead.redriven)
    # An invalid record in a killed batch may be quarantined by the victim, then again when it comes back.
    in_killed_batches = set().union(*(kill.batch_order_ids for kill in seen.kills))
    copies = {order_id: n - 1 for order_id, n in dead.per_order.items() if n > 1}
    # A copy is explained by a killed batch, or by a dead-letter send that took effect unanswered.
    copies_aws = {o: min(n, dlq_unanswered[o]) for o, n in copies.items() if dlq_unanswered[o]}
    copies_unexplained = {o for o, n in copies.items() if n > copies_aws.get(o, 0)} - in_killed_batches
    record_events = {r.envelope_id() for inv in seen.invocations for r in inv.records}
    non_order_events = {p.event_id for p in plan if p.kind == NON_ORDER}
    return SoakResult(
        orders=orders,
        seed=seed,
        kills_requested=kills,
        cores=os.cpu_count() or 1,
        wall_seconds=wall,
        overrides={name: seen.environment.get(name, "") for name in shown_overrides()},
        sent=Counter(p.kind for p in plan),
        valid_ids=valid_ids,
        invalid_ids=invalid_ids,
        delivered=len(valid_ids & accepted_ids),
        undelivered=sorted(valid_ids - accepted_ids),
        lost=sorted(valid_ids - accepted_ids - dlq_ids),
        quarantined=Counter({key: len(ids) for key, ids in dead.by_reason.items()}),
        quarantine_copies=sum(copies.values()),
        quarantine_copies_unexplained=sorted(copies_unexplained),
        quarantine_copies_aws=sum(copies_aws.values()),
        redriven=sorted(dead.redriven),
        # A message moved by the redrive policy is explained only as a copy of an order credited anyway
        # (it kept meeting faults, or the order in progress elsewhere, maxReceiveCount times).
        redriven_unexplained=sorted(o for o in dead.redriven if o not in accepted_ids),
        invalid_not_quarantined=sorted(invalid_ids - dead.ids_by_outcome["invalid"]),
        invalid_posted=sorted({r.order_id for r in received if r.order_id} & invalid_ids),
        unexpected_accepted=sorted(accepted_ids - valid_ids),
        non_orders_on_queue=len(non_order_events & record_events),
        requests=len(received),
        requests_by_fault=Counter(_FAULT_LABELS.get(r.fault or "", r.fault or "none") for r in received),
        duplicates_total=duplicates.total,
        duplicates_by_cause=duplicates.by_cause,
        ambiguous_events=duplicates.ambiguous,
        maybe_received_lines=logs.maybe_received,
        no_answer_requests=sum(1 for r in received if r.fault in ("drop_before", "drop_after", "timeout")),
        outcomes=logs.outcomes,
        killed_outcomes=logs.killed_outcomes,
        retry_reasons=logs.retry_reasons,
        invocations=len(seen.invocations),
        invocation_errors=_invocation_errors(seen.invocations),
        kills=seen.kills,
        kill_attempts=[attempt.reason for attempt in seen.kill_attempts],
        problems=list(seen.problems),
        aws=aws,
        done_marks_not_written=sum(done_marks.values()),
        longest_invocation_seconds=max((i.duration_seconds for i in seen.invocations), default=0.0),
    )
