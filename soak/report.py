"""The soak's printout: settings, the table, the details and the PASS/FAIL lines."""

from __future__ import annotations

import textwrap

from local.sandbox import FAULTS
from soak.aws_phases import (
    AWS_FAULT_WEIGHTS,
    AWS_PHASE_FUNCTION_TIMEOUT_SECONDS,
    AWS_PHASE_OVERRIDES,
    AWS_PHASES,
)
from soak.aws_phases import SLOW_SECONDS as AWS_SLOW_SECONDS
from soak.result import SoakResult
from soak.settings import (
    DONE_MARK,
    DROP_AFTER,
    FAULT_DELAY_SECONDS,
    FAULT_WEIGHTS,
    KILL,
    KILL_HOLD_SECONDS,
    KILL_WINDOW_MS,
    KINDS,
    LATE_TIMEOUT,
    NON_ORDER,
    RELEASE_MARGIN_SECONDS,
    SLOW_SECONDS,
)


def render(result: SoakResult) -> str:
    """The table: sent, delivered, quarantined, duplicates by cause, lost."""
    rows: list[tuple[str, str]] = []

    def row(label: str, value: object = "", indent: int = 0) -> None:
        rows.append(("  " * indent + label, str(value)))

    sent_total = sum(result.sent.values())
    row("sent (PutEvents on the order events bus)", sent_total)
    for kind in KINDS:
        label = f"{kind}s" + (" (filtered by the rule)" if kind == NON_ORDER else "")
        row(label, result.sent[kind], 1)
    row("delivered (unique valid orders Refersion credited)", f"{result.delivered} / {len(result.valid_ids)}")
    row("quarantined (orders in the dead-letter queue, by reason)", sum(result.quarantined.values()))
    for (outcome, reason), count in sorted(result.quarantined.items()):
        row(f"{outcome}: {reason}", count, 1)
    row("messages beyond one per order (killed batch)", result.quarantine_copies, 1)
    row("moved by the redrive policy (maxReceiveCount)", len(result.redriven), 1)
    row("duplicates received by the sandbox", result.duplicates_total)
    row("after 5xx / 429 / drop_before / slow / answered posts", result.duplicates_unambiguous, 1)
    row(
        "after drop_after (processed, then the connection dropped)", result.duplicates_by_cause[DROP_AFTER], 1
    )
    row("after a timeout (processed after the relay gave up)", result.duplicates_by_cause[LATE_TIMEOUT], 1)
    row("after a kill (in flight when the invocation died)", result.duplicates_by_cause[KILL], 1)
    if result.aws is not None:
        row("after a delivery recorded nowhere (AWS fault)", result.duplicates_by_cause[DONE_MARK], 1)
        row("deliveries recorded nowhere (AWS fault)", result.done_marks_not_written)
        row("DLQ copies of sends that took effect unanswered (AWS fault)", result.quarantine_copies_aws)
    row("posts processed without an answer (the window)", sum(result.ambiguous_events.values()))
    row("drop_after", result.ambiguous_events[DROP_AFTER], 1)
    row("late-accepted timeouts", result.ambiguous_events[LATE_TIMEOUT], 1)
    row("in flight at a kill", result.ambiguous_events[KILL], 1)
    row("lost", len(result.lost))
    row("requests in flight when an invocation was killed", result.in_flight_at_kills)
    width = max(len(label) for label, _ in rows) + 2
    table = [f"  {label.ljust(width)}{value:>10}" for label, value in rows]
    rule = "  " + "-" * (width + 10)
    return "\n".join([rule, *table, rule])


class _Printout:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, text: str = "", indent: int = 2) -> None:
        if not text:
            self.lines.append("")
            return
        prefix = " " * indent
        self.lines.append(
            textwrap.fill(text, width=108, initial_indent=prefix, subsequent_indent=prefix + "  ")
        )


def _settings(out: _Printout, result: SoakResult) -> None:
    out.add(
        ("AWS-fault phase " + repr(result.aws_phase) + " of the " if result.aws_phase else "")
        + (f"{result.extra} run of the " if result.extra else "")
        + f"Refersion relay fault-injection soak: {result.orders} orders, seed {result.seed}, "
        f"{result.cores} core(s), wall time {result.wall_seconds:.1f} s",
        indent=0,
    )
    out.add(
        "function environment overrides (template.yaml otherwise): "
        + ", ".join(f"{k}={v}" for k, v in result.overrides.items())
    )
    out.add(
        "as in template.yaml: queue visibility timeout 360 s, maxReceiveCount 12, batch size 10, batching "
        "window 1 s, function timeout 60 s, REFERSION_MAX_CONCURRENCY 10"
    )
    weights = ", ".join(f"{name} {FAULT_WEIGHTS[name]:g}%" for name in FAULTS if name in FAULT_WEIGHTS)
    out.add(
        f"sandbox answers: {weights}; timeout = processed, answered after {FAULT_DELAY_SECONDS:g} s (the "
        f"relay waits {result.overrides.get('REFERSION_TIMEOUT_SECONDS')} s); slow = answered after "
        f"{SLOW_SECONDS:g} s; 429 with Retry-After: 1"
    )
    out.add(
        f"kills: {len(result.kills)} batch(es) run in a subprocess (context: {KILL_WINDOW_MS} ms remaining) "
        f"and SIGKILLed mid-batch, the sandbox answering half their posts at once and holding the others "
        f"{KILL_HOLD_SECONDS:g} s. Their messages were made visible again "
        f"{KILL_WINDOW_MS / 1000 + RELEASE_MARGIN_SECONDS:g} s after the kill with "
        "ChangeMessageVisibility(VisibilityTimeout=0): this stands for the queue's 360 s visibility timeout "
        "elapsing."
    )


def _traffic(out: _Printout, result: SoakResult) -> None:
    out.add(
        f"{result.requests} requests at the sandbox, by answer: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.requests_by_fault.items()))
    )
    out.add(
        f"{result.invocations} invocations by the poller; their outcome lines: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
    )
    if result.killed_outcomes:
        out.add(
            "outcome lines the killed invocation(s) wrote before dying: "
            + ", ".join(f"{k} {v}" for k, v in sorted(result.killed_outcomes.items()))
        )
    out.add("retries by reason: " + "; ".join(f"{k}: {v}" for k, v in result.retry_reasons.most_common()))
    out.add(
        f"retries logged with maybe_received=true: {result.maybe_received_lines} (requests dropped before or "
        f"after processing, or answered after the timeout: {result.no_answer_requests}; the relay cannot "
        "tell a drop before processing from one after)"
    )


def _kills(out: _Printout, result: SoakResult) -> None:
    for kill in result.kills:
        out.add(
            f"kill {kill.number}: a batch of {len(kill.receipt_handles)} messages, {len(kill.postable)} of "
            f"their orders not credited yet ({len(kill.postable) - len(kill.held)} answered at once, "
            f"{len(kill.held)} held); SIGKILL {kill.killed_at - kill.started_at:.2f} s after the process "
            f"started. It had sent {kill.posts} post(s): {kill.accepted_before_kill} answered and recorded, "
            f"{kill.in_flight} without an answer when it died (sandbox.in_flight() at SIGKILL: "
            f"{kill.sandbox_in_flight}); orders credited twice as a result: {kill.duplicates}"
        )
    for attempt in result.kill_attempts:
        out.add(f"kill attempt set aside: {attempt}")
    out.add(
        "drop_after, late-accepted timeouts and kills are one and the same window: Refersion processed a "
        "post whose answer never reached the relay, which then posts the order again (its retry is logged "
        "with maybe_received=true). Refersion documents no de-duplication, so no sender can close this "
        "window without the receiver's help; every other fault causes no duplicate."
    )


def _aws(out: _Printout, result: SoakResult) -> None:
    aws = result.aws
    if aws is None:
        return
    scale = next((p.scale for p in AWS_PHASES if p.name == result.aws_phase), 1.0)
    weights = ", ".join(f"{name} {percent * scale:g}%" for name, percent in AWS_FAULT_WEIGHTS.items())
    out.add(
        f"AWS faults ({result.aws_phase}): the function's AWS calls through the fault proxy, each attempt "
        f"answered: {weights} (slow = {AWS_SLOW_SECONDS:g} s, past the 1 s read timeout; *_after = moto "
        f"applied the call first); one attempt per call (no botocore retries). Also "
        + ", ".join(f"{k}={v}" for k, v in AWS_PHASE_OVERRIDES.items())
        + f"; function timeout {AWS_PHASE_FUNCTION_TIMEOUT_SECONDS} s (the in-progress window), longest "
        f"invocation {result.longest_invocation_seconds:.1f} s"
    )
    for service, operation in sorted(aws.calls):
        faults = {f: n for (s, o, f), n in aws.faults.items() if (s, o) == (service, operation)}
        failed = aws.calls_failed.get((service, operation))
        out.add(
            f"{service} {operation}: {aws.calls[(service, operation)]} attempts, faults "
            + (", ".join(f"{f} {n}" for f, n in sorted(faults.items())) or "none")
            + (f"; calls failed: {failed}" if failed is not None else "")
        )


def report(result: SoakResult) -> str:
    """The whole printout: settings, the table, the details and the PASS/FAIL lines."""
    out = _Printout()
    _settings(out, result)
    out.add()
    out.lines.append(render(result))
    out.add()
    if result.extra_lines:
        out.lines.extend([*result.extra_lines, ""])
    _traffic(out, result)
    _aws(out, result)
    _kills(out, result)
    for text in [
        *result.problems,
        *result.invocation_errors,
        *(f"left behind: {x}" for x in result.left_behind),
    ]:
        out.add(f"! {text}")
    out.add()
    for ok, text in result.checks:
        out.add(f"{'PASS' if ok else 'FAIL'}  {text}", indent=0)
    out.add()
    out.add("soak PASSED" if result.passed else "soak FAILED", indent=0)
    return "\n".join(out.lines)
