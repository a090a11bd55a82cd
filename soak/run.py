"""The soak's run: publish the plan in chunks, poll the queue as Lambda would, kill invocations, observe."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO, cast

from local.aws_faults import AwsFaultProxy
from local.poller import EventSourceMapping
from local.sandbox import RefersionSandbox, Reply
from local.stack import LocalStack
from soak.accounting import Observed, account
from soak.aws_phases import (
    AWS_PHASE_FUNCTION_TIMEOUT_SECONDS,
    AWS_PHASE_OVERRIDES,
    AwsEffects,
    AwsPhase,
    aws_effects,
    first_call_faults,
    phase_rules,
)
from soak.extras import SoakExtra
from soak.kills import Attempt, Kill, postable_orders, run_and_kill
from soak.lines import order_id_of_body
from soak.plan import Planned, build_plan
from soak.result import SoakResult, check
from soak.settings import (
    DEFAULT_KILLS,
    DEFAULT_ORDERS,
    DEFAULT_SEED,
    FAULT_DELAY_SECONDS,
    FAULT_WEIGHTS,
    KILL_ATTEMPTS,
    KILL_HOLD_SECONDS,
    LOW_WATER,
    PROGRESS_SECONDS,
    PUBLISH_CHUNK,
    SOAK_OVERRIDES,
    UNPACED_MARGIN_SECONDS,
    VALID,
)


class SoakTimeout(TimeoutError):
    """The queue was not drained in time."""


def run_soak(
    orders: int = DEFAULT_ORDERS,
    seed: int = DEFAULT_SEED,
    kills: int = DEFAULT_KILLS,
    *,
    timeout: float | None = None,
    progress: TextIO | None = None,
    aws_phase: AwsPhase | None = None,
    extra: SoakExtra | None = None,
) -> SoakResult:
    """Run the soak on a fresh local stack and account for every order; see the module docstring.
    ``aws_phase``: the function's AWS calls go through the fault proxy, faulting that phase's services.
    ``extra``: refunds or confirmations added to the run (soak/extras.py)."""
    if orders < 10 or kills < 0:
        raise ValueError("at least 10 orders, and a number of kills >= 0")
    started = time.monotonic()
    extra = extra or SoakExtra()
    plan = extra.extend_plan(build_plan(orders, seed), seed)
    limit = timeout if timeout is not None else 120.0 + 0.2 * len(plan)
    overrides = {**SOAK_OVERRIDES, **(AWS_PHASE_OVERRIDES if aws_phase else {}), **extra.overrides}
    stack = LocalStack(overrides=overrides, aws_faults=aws_phase is not None, parameters=extra.parameters)
    try:
        stack.start()
        if stack.aws_faults is not None and aws_phase is not None:
            rules = [*first_call_faults(aws_phase), *phase_rules(aws_phase)]
            stack.aws_faults.set_rules(rules, seed=seed)
        extra.started(stack, seed)
        soak = _Soak(stack, plan, seed, kills, progress, extra)
        problems: list[str] = []
        try:
            soak.run(deadline=started + limit)
        except SoakTimeout as exc:
            problems.append(str(exc))
        observed = soak.observe()
        extra.observe(stack, observed)
    finally:
        stack.stop()
        extra.stopped()
    result = account(plan, observed, orders=orders, seed=seed, kills=kills, wall=time.monotonic() - started)
    result.problems.extend(problems)
    result.left_behind = list(stack.left_behind)
    result.aws_phase = aws_phase.name if aws_phase else ""
    result.extra = extra.name
    check(result)
    extra.account(result)
    return result


class _Discard:
    """Where the poller writes the relay's log lines after each invocation: they are kept on the
    Invocation records, and 3,000 JSON lines on the terminal would hide the table."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


class _Soak:
    def __init__(  # noqa: PLR0917
        self,
        stack: LocalStack,
        plan: list[Planned],
        seed: int,
        kills: int,
        progress: TextIO | None,
        extra: SoakExtra | None = None,
    ) -> None:
        self.stack = stack
        self.sandbox: RefersionSandbox = stack.sandbox
        self.plan = plan
        self.seed = seed
        self.kills_wanted = kills
        self.progress = progress
        self.extra = extra or SoakExtra()
        changes: dict[str, Any] = {"log_stream": cast(TextIO, _Discard())}
        if stack.aws_faults is not None:
            changes["function_timeout_seconds"] = AWS_PHASE_FUNCTION_TIMEOUT_SECONDS
        self.mapping: EventSourceMapping = stack.mapping(**changes)
        self.valid_ids = {p.order_id for p in plan if p.kind == VALID}
        self.kills: list[Kill] = []
        self.kill_attempts: list[Attempt] = []
        self.problems: list[str] = []
        self.published = 0
        self.proxy: AwsFaultProxy | None = stack.aws_faults
        self._unpaced_seen: dict[str, float] = {}  # receipt handle -> when its pacing was seen failing
        self._released: set[str] = set()

    # ---------------------------------------------------------------- main loop

    def run(self, deadline: float) -> None:
        self.sandbox.set_fault_mix(FAULT_WEIGHTS, seed=self.seed, fault_delay=FAULT_DELAY_SECONDS)
        # Kills happen once this many events are published: spread over the run, never at its very end.
        kill_points = [len(self.plan) * (k + 1) // (self.kills_wanted + 1) for k in range(self.kills_wanted)]
        next_report = time.monotonic() + PROGRESS_SECONDS
        while True:
            now = time.monotonic()
            if now > deadline:
                raise SoakTimeout(f"queue not drained in time: {self.mapping.depth()}")
            if self.progress is not None and now >= next_report:
                self._report_progress()
                next_report = now + PROGRESS_SECONDS
            self._release_due()
            self._release_unpaced()
            depth = self.mapping.depth()
            all_published = self.published == len(self.plan)
            kills_done = len(self.kills) >= self.kills_wanted or len(self.kill_attempts) >= KILL_ATTEMPTS
            releases_done = all(kill.released_at is not None for kill in self.kills)
            self.extra.tick(self.stack, self.published, len(self.plan), kills_done)
            if all_published and kills_done and releases_done and depth.total == 0 and self.extra.done():
                return
            if not all_published and depth.visible < LOW_WATER:
                self._publish_chunk()
            if not kills_done and self.published >= kill_points[len(self.kills)]:
                self._kill_one()
                continue
            self.mapping.poll_once(wait_seconds=1)

    def _publish_chunk(self) -> None:
        chunk = self.plan[self.published : self.published + PUBLISH_CHUNK]
        for planned, event_id in zip(chunk, self.stack.publish_all(p.detail for p in chunk), strict=True):
            planned.event_id = event_id
        self.published += len(chunk)

    def _report_progress(self) -> None:
        assert self.progress is not None
        depth = self.mapping.depth()
        delivered = len(set(self.sandbox.accepted_order_ids()) & self.valid_ids)
        print(
            f"  ... published {self.published}/{len(self.plan)}, "
            f"{len(self.mapping.invocations)} invocations, "
            f"{delivered}/{len(self.valid_ids)} orders credited, queue {depth.visible} visible "
            f"+ {depth.in_flight} in flight",
            file=self.progress,
            flush=True,
        )

    # ---------------------------------------------------------------- a killed invocation

    # ---------------------------------------------------------------- a killed invocation

    def _kill_one(self) -> None:
        """Receive a batch as the poller would, run it in a subprocess and SIGKILL it mid-batch."""
        # Late answers to earlier posts first, so that whatever is in flight from now on is the victim's.
        self.sandbox.wait_for(lambda s: s.in_flight() == 0, timeout=FAULT_DELAY_SECONDS + 2)
        messages = self.mapping.receive_batch(wait_seconds=1)
        if not messages:
            self.kill_attempts.append(Attempt("the queue gave no batch"))
            return
        credited = set(self.sandbox.accepted_order_ids())
        order_ids = [order_id_of_body(str(m["Body"])) for m in messages]
        postable = postable_orders(order_ids, self.valid_ids, credited)
        if len(postable) < 2:
            self._make_visible(messages)
            self.kill_attempts.append(Attempt(f"a batch with {len(postable)} order(s) to post: given back"))
            return
        # Half the posts are answered at once, the other half held: some accepted, some in flight.
        half = (len(postable) + 1) // 2
        answered, held = postable[:half], postable[half:]
        for order_id in answered:
            self.sandbox.script_for(order_id, Reply())
        for order_id in held:
            self.sandbox.script_for(order_id, Reply(delay=KILL_HOLD_SECONDS))
        try:
            event = self.mapping.lambda_event(messages)
            outcome = run_and_kill(
                self.sandbox, event, messages, order_ids, (postable, held), number=len(self.kills) + 1
            )
        finally:
            # Unused scripted replies must not outlive the kill; the fault mix goes on (a seed of its own).
            self.sandbox.clear_faults()
            self.sandbox.set_fault_mix(
                FAULT_WEIGHTS,
                seed=self.seed + 7919 * (len(self.kill_attempts) + len(self.kills) + 1),
                fault_delay=FAULT_DELAY_SECONDS,
            )
        if isinstance(outcome, Attempt):
            self.kill_attempts.append(outcome)
            self._make_visible(messages)
        else:
            self.kills.append(outcome)

    def _release_due(self) -> None:
        for kill in self.kills:
            if kill.released_at is None and time.monotonic() >= kill.release_due:
                failed = self._make_visible_handles(kill.receipt_handles)
                if failed:
                    self.problems.append(f"kill {kill.number}: could not make {failed} message(s) visible")
                kill.released_at = time.monotonic()

    def _release_unpaced(self) -> None:
        """Records whose retry pacing (ChangeMessageVisibilityBatch) failed for good stay invisible for
        the queue's 360 s visibility timeout: made visible once the paced delay (at most
        RETRY_MAX_DELAY_SECONDS) has passed instead, standing for that timeout elapsing."""
        if self.proxy is None:
            return
        now = time.monotonic()
        calls = [c for c in self.proxy.calls() if c.operation == "ChangeMessageVisibilityBatch"]
        for handle in aws_effects(calls, (), "").unpaced_handles:
            self._unpaced_seen.setdefault(handle, now)
        delay = float(self.stack.environment.get("RETRY_MAX_DELAY_SECONDS", "1")) + UNPACED_MARGIN_SECONDS
        due = [h for h, seen in self._unpaced_seen.items() if h not in self._released and now - seen >= delay]
        if due:
            self._released.update(due)
            self._make_visible_handles(due)  # a handle of a message since deleted or received fails: fine

    def _make_visible(self, messages: Sequence[Mapping[str, Any]]) -> None:
        failed = self._make_visible_handles([str(m["ReceiptHandle"]) for m in messages])
        if failed:
            self.problems.append(f"could not give {failed} message(s) back to the queue")

    def _make_visible_handles(self, handles: Sequence[str]) -> int:
        sqs = self.stack.aws.client("sqs")
        failed = 0
        for start in range(0, len(handles), 10):
            answer = sqs.change_message_visibility_batch(
                QueueUrl=self.stack.resources.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + 10])
                ],
            )
            failed += len(answer.get("Failed", []))
        return failed

    # ---------------------------------------------------------------- what happened

    def observe(self) -> Observed:
        # Answers still held (late "timeout" answers) are accepted or not before anything is counted.
        if not self.sandbox.wait_for(lambda s: s.in_flight() == 0, timeout=KILL_HOLD_SECONDS + 5):
            self.problems.append(f"{self.sandbox.in_flight()} request(s) still held by the sandbox")
        return Observed(
            environment=self.stack.environment,
            received=self.sandbox.received(),
            dead_letters=self.stack.take_dead_letters(),
            invocations=self.mapping.invocations,
            kills=self.kills,
            kill_attempts=self.kill_attempts,
            problems=self.problems,
            aws=self._aws_effects(),
        )

    def _aws_effects(self) -> AwsEffects | None:
        if self.proxy is None:
            return None
        order_ids = {p.order_id for p in self.plan if p.order_id}
        return aws_effects(self.proxy.calls(), order_ids, self.stack.resources.dlq_url)
