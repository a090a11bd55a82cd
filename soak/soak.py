"""Fault-injection soak on the local topology: ``python -m soak.soak`` (what ``make soak`` runs).

Publishes N valid Datafly "Order Completed" events, ~5 % invalid ones, ~10 % of the valid ones again
later as duplicates (same order id and body, a new EventBridge event) and a few events that are not
orders, on the local order events bus (local/stack.py: bus -> rule -> queue -> Lambda-like poller
-> relay -> Refersion sandbox, DLQ and idempotency table). The sandbox answers with a seeded mix of
500, 503, 429 (Retry-After), timeouts, connections dropped before or after processing, and slow
answers. At least one batch is run in a subprocess instead, and SIGKILLed mid-batch while some of its
posts are answered and others are held by the sandbox.

Once the queue is drained it accounts for every order: sent, delivered, quarantined (with reasons),
duplicates received by the sandbox (each explained by its cause), lost, and the requests in flight when
an invocation was killed, then prints a table and PASS/FAIL lines. Exit status 1 when a guarantee fails.

What a duplicate at the sandbox can come from. Refersion documents no de-duplication, so an order is
credited twice exactly when it processed a post the relay got no answer for: the connection dropped
after processing (``drop_after``), an answer later than the relay's timeout (``timeout``: processed all
the same), or a post in flight when its invocation was killed. These are one and the same window (the
request reached Refersion, no answer came back); no sender can close it without the receiver's help.
The relay logs each such retry with ``maybe_received: true``. Every other fault (5xx, 429, dropped
before processing, slow but answered) must cause no duplicate at all.

Determinism: the events, their publishing order and the sequence of faults drawn follow from the seed.
Which post meets which fault does not quite: the ten posts of a batch go out concurrently, so the
figures differ a little from run to run, while every guarantee holds for each.

``run_soak()`` is the whole soak as a function (tests/e2e/test_soak.py runs a small one); ``main()`` is
the command line: ``--orders``, ``--seed``, ``--kills``, ``--timeout``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO, cast

from handler.budget import record_budget_seconds
from local.lambda_shapes import load_event
from local.poller import EventSourceMapping, Invocation
from local.sandbox import FAULTS, Received, RefersionSandbox, Reply
from local.stack import FAST_OVERRIDES, LocalStack

ROOT: Final = Path(__file__).resolve().parents[1]
SRC: Final = ROOT / "src"

DEFAULT_ORDERS: Final = 2000
DEFAULT_SEED: Final = 20261120
DEFAULT_KILLS: Final = 1
INVALID_SHARE: Final = 0.05
DUPLICATE_SHARE: Final = 0.10

# The sandbox's answers, in percent: 70 % normal, 30 % faults.
FAULT_WEIGHTS: Final[Mapping[str, float]] = {
    "ok": 70,
    "500": 4,
    "503": 4,
    "429": 5,
    "timeout": 4,
    "drop_before": 4,
    "drop_after": 4,
    "slow": 5,
}
FAULT_DELAY_SECONDS: Final = 1.0  # a "timeout" answer comes after this, twice the relay's timeout
SLOW_SECONDS: Final = 0.2  # the sandbox's "slow" fault (local/sandbox.py)
# On top of local/stack.py's FAST_OVERRIDES: a short timeout, so a timed-out post costs 0.5 s.
SOAK_OVERRIDES: Final[Mapping[str, str]] = {
    "REFERSION_TIMEOUT_SECONDS": "0.5",
    "RETRY_BASE_DELAY_SECONDS": "1",
    "RETRY_MAX_DELAY_SECONDS": "1",
}

# The killed invocation: its context's remaining time (the in-progress window of its orders; one record
# starts only while its handler.budget remains), how long the sandbox holds half of its posts, and how long
# the kill waits at most, once a post is answered and one held, for every other record of the batch to
# be finished or its post held (well inside the relay's 0.5 s timeout).
KILL_WINDOW_MS: Final = int(record_budget_seconds(0.5) * 1000) + 3000  # 2 x 0.5 s + 14 s, + 3 s
KILL_HOLD_SECONDS: Final = 2.0
KILL_SETTLE_SECONDS: Final = 0.25
KILL_ATTEMPTS: Final = 6
KILL_QUIET_SECONDS: Final = 0.2  # after the kill: the victim's last connections reach the sandbox's accept
RELEASE_MARGIN_SECONDS: Final = 0.5

PUBLISH_CHUNK: Final = 100  # events per publishing round
LOW_WATER: Final = 50  # publish the next chunk when fewer messages than this are visible
PROGRESS_SECONDS: Final = 15.0

VALID, INVALID, DUPLICATE, NON_ORDER = "valid order", "invalid order", "re-published duplicate", "non-order"
KINDS: Final = (VALID, INVALID, DUPLICATE, NON_ORDER)
# Causes of an accepted post the relay got no answer for, and of the duplicates they lead to.
DROP_AFTER, LATE_TIMEOUT, KILL = "drop_after", "timeout", "kill"
ANSWERED = "answered"

_KILLED_INVOCATION_SCRIPT: Final = (
    "import json, sys\n"
    "from handler.app import lambda_handler\n"
    "from local.lambda_shapes import FakeLambdaContext\n"
    "with open(sys.argv[1], encoding='utf-8') as source:\n"
    "    event = json.load(source)\n"
    "lambda_handler(event, FakeLambdaContext(remaining_ms=float(sys.argv[2])))\n"
)


class SoakTimeout(TimeoutError):
    """The queue was not drained in time."""


# --------------------------------------------------------------------------- what is published


@dataclass
class Planned:
    """One event to publish, and what it is."""

    kind: str
    order_id: str | None
    detail: dict[str, Any]
    event_id: str = ""


def build_plan(orders: int, seed: int) -> list[Planned]:
    """The events, in publishing order; the same for the same arguments."""
    rng = random.Random(seed)
    template = load_event("datafly/seed-order.json")
    valid = [Planned(VALID, f"S{n:06d}", _order(f"S{n:06d}", rng, template)) for n in range(orders)]
    invalid: list[Planned] = []
    for n in range(max(1, round(orders * INVALID_SHARE))):
        order_id = f"X{n:06d}"
        detail = _order(order_id, rng, template)
        if n % 2:
            del detail["properties"]["cart_id"]
        else:
            detail["properties"]["products"][0]["price"] = "$5.50"
        invalid.append(Planned(INVALID, order_id, detail))
    base = [*valid, *invalid, *(Planned(NON_ORDER, None, d) for d in _non_orders(rng))]
    rng.shuffle(base)
    # Duplicates: each copy is published after its original, anywhere from the same chunk to the end.
    keyed: list[tuple[float, Planned]] = [(float(i), p) for i, p in enumerate(base)]
    position = {p.order_id: i for i, p in enumerate(base) if p.kind == VALID}
    for original in rng.sample(valid, max(1, round(orders * DUPLICATE_SHARE))):
        start = position[original.order_id] + 1
        copy_at = start + rng.random() * (len(base) - start + 1)
        keyed.append((copy_at, Planned(DUPLICATE, original.order_id, copy.deepcopy(original.detail))))
    keyed.sort(key=lambda item: item[0])
    return [planned for _, planned in keyed]


def _order(order_id: str, rng: random.Random, template: Mapping[str, Any]) -> dict[str, Any]:
    detail = copy.deepcopy(dict(template))
    detail["messageId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    properties = detail["properties"]
    properties["order_id"] = order_id
    properties["cart_id"] = f"cart_{order_id}"
    properties["shipping"] = round(rng.uniform(0, 20), 2)
    properties["tax"] = round(rng.uniform(0, 10), 2)
    properties["products"] = [
        {
            "sku": f"SKU-{rng.randrange(1000):03d}",
            "name": f"Product {rng.randrange(1000)}",
            "price": round(rng.uniform(1, 250), 2),
            "quantity": rng.randint(1, 3),
        }
        for _ in range(rng.randint(1, 3))
    ]
    return detail


def _non_orders(rng: random.Random) -> list[dict[str, Any]]:
    def track(name: str) -> dict[str, Any]:
        return {
            "type": "track",
            "event": name,
            "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "properties": {"order_id": "not-an-order"},
        }

    return [
        load_event("datafly/page-view.json"),
        track("Product Viewed"),
        track("Checkout Started"),
        track("Order Refunded"),
        {"type": "identify", "userId": "user_1", "traits": {"plan": "pro"}},
    ]


# --------------------------------------------------------------------------- the kills


@dataclass
class Kill:
    """One invocation run in a subprocess and SIGKILLed mid-batch."""

    number: int
    batch_order_ids: frozenset[str]  # every order id in the batch
    postable: tuple[str, ...]  # orders of the batch Refersion had not credited yet
    held: tuple[str, ...]  # of those, the ones whose post the sandbox holds KILL_HOLD_SECONDS
    receipt_handles: tuple[str, ...]
    started_at: float  # time.monotonic(), when the subprocess was started
    killed_at: float
    # Connections the sandbox accepted while only the victim was posting: (first, last] are the victim's.
    connections: tuple[int, int]
    sandbox_in_flight: int  # sandbox.in_flight() when SIGKILL was sent
    logs: tuple[dict[str, Any], ...]  # the outcome lines the invocation wrote before it died
    release_due: float
    released_at: float | None = None
    # Filled in by the accounting:
    posts: int = 0  # requests of the killed invocation the sandbox received (on its connections)
    in_flight: int = 0  # of those, the ones the invocation had no answer recorded for when killed
    accepted_before_kill: int = 0
    duplicates: int = 0


@dataclass(frozen=True)
class _Attempt:
    """A kill that could not be done with this batch: given back to the queue.

    When the subprocess ran (and finished before it could be killed), its posts are accounted for as
    any other's: ``connections`` and ``logs`` say which they were and what it made of them."""

    reason: str
    connections: tuple[int, int] = (0, 0)
    logs: tuple[dict[str, Any], ...] = ()


# --------------------------------------------------------------------------- the result


@dataclass
class SoakResult:
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
    checks: list[tuple[bool, str]] = field(default_factory=list)

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


# --------------------------------------------------------------------------- the run


def run_soak(
    orders: int = DEFAULT_ORDERS,
    seed: int = DEFAULT_SEED,
    kills: int = DEFAULT_KILLS,
    *,
    timeout: float | None = None,
    progress: TextIO | None = None,
) -> SoakResult:
    """Run the soak on a fresh local stack and account for every order; see the module docstring."""
    if orders < 10 or kills < 0:
        raise ValueError("at least 10 orders, and a number of kills >= 0")
    started = time.monotonic()
    plan = build_plan(orders, seed)
    limit = timeout if timeout is not None else 120.0 + 0.2 * len(plan)
    stack = LocalStack(overrides=SOAK_OVERRIDES)
    try:
        stack.start()
        soak = _Soak(stack, plan, seed, kills, progress)
        problems: list[str] = []
        try:
            soak.run(deadline=started + limit)
        except SoakTimeout as exc:
            problems.append(str(exc))
        observed = soak.observe()
    finally:
        stack.stop()
    result = _account(plan, observed, orders, seed, kills, time.monotonic() - started)
    result.problems.extend(problems)
    result.left_behind = list(stack.left_behind)
    _check(result)
    return result


@dataclass
class _Observed:
    environment: dict[str, str]
    received: list[Received]
    dead_letters: list[dict[str, Any]]
    invocations: list[Invocation]
    kills: list[Kill]
    kill_attempts: list[_Attempt]
    problems: list[str]


class _Discard:
    """Where the poller writes the relay's log lines after each invocation: they are kept on the
    Invocation records, and 3,000 JSON lines on the terminal would hide the table."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


class _Soak:
    def __init__(
        self, stack: LocalStack, plan: list[Planned], seed: int, kills: int, progress: TextIO | None
    ) -> None:
        self.stack = stack
        self.sandbox: RefersionSandbox = stack.sandbox
        self.plan = plan
        self.seed = seed
        self.kills_wanted = kills
        self.progress = progress
        self.mapping: EventSourceMapping = stack.mapping(log_stream=cast(TextIO, _Discard()))
        self.valid_ids = {p.order_id for p in plan if p.kind == VALID}
        self.kills: list[Kill] = []
        self.kill_attempts: list[_Attempt] = []
        self.problems: list[str] = []
        self.published = 0

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
            depth = self.mapping.depth()
            all_published = self.published == len(self.plan)
            kills_done = len(self.kills) >= self.kills_wanted or len(self.kill_attempts) >= KILL_ATTEMPTS
            releases_done = all(kill.released_at is not None for kill in self.kills)
            if all_published and kills_done and releases_done and depth.total == 0:
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

    def _kill_one(self) -> None:
        """Receive a batch as the poller would, run it in a subprocess and SIGKILL it mid-batch."""
        # Late answers to earlier posts first, so that whatever is in flight from now on is the victim's.
        self.sandbox.wait_for(lambda s: s.in_flight() == 0, timeout=FAULT_DELAY_SECONDS + 2)
        messages = self.mapping.receive_batch(wait_seconds=1)
        if not messages:
            self.kill_attempts.append(_Attempt("the queue gave no batch"))
            return
        credited = set(self.sandbox.accepted_order_ids())
        order_ids = [_order_id_of_body(str(m["Body"])) for m in messages]
        postable: list[str] = []
        for order_id in order_ids:
            if (
                order_id
                and order_id in self.valid_ids
                and order_id not in credited
                and order_id not in postable
            ):
                postable.append(order_id)
        if len(postable) < 2:
            self._make_visible(messages)
            self.kill_attempts.append(_Attempt(f"a batch with {len(postable)} order(s) to post: given back"))
            return
        # Half the posts are answered at once, the other half held: some accepted, some in flight.
        half = (len(postable) + 1) // 2
        answered, held = postable[:half], postable[half:]
        for order_id in answered:
            self.sandbox.script_for(order_id, Reply())
        for order_id in held:
            self.sandbox.script_for(order_id, Reply(delay=KILL_HOLD_SECONDS))
        try:
            outcome = self._run_and_kill(messages, order_ids, postable, held)
        finally:
            # Unused scripted replies must not outlive the kill; the fault mix goes on (a seed of its own).
            self.sandbox.clear_faults()
            self.sandbox.set_fault_mix(
                FAULT_WEIGHTS,
                seed=self.seed + 7919 * (len(self.kill_attempts) + len(self.kills) + 1),
                fault_delay=FAULT_DELAY_SECONDS,
            )
        if isinstance(outcome, _Attempt):
            self.kill_attempts.append(outcome)
            self._make_visible(messages)
        else:
            self.kills.append(outcome)

    def _run_and_kill(
        self,
        messages: list[dict[str, Any]],
        order_ids: list[str | None],
        postable: list[str],
        held: list[str],
    ) -> Kill | _Attempt:
        event = self.mapping.lambda_event(messages)
        record_ids = {str(m["MessageId"]) for m in messages}
        with tempfile.TemporaryDirectory(prefix="soak-kill-") as scratch:
            event_path, log_path = Path(scratch, "event.json"), Path(scratch, "stdout.jsonl")
            event_path.write_text(json.dumps(event), encoding="utf-8")
            environ = {
                **os.environ,  # the function's environment, applied by the stack
                "PYTHONPATH": f"{SRC}{os.pathsep}{ROOT}",
                "PYTHONUNBUFFERED": "1",  # every log line reaches the file before the kill
            }
            with log_path.open("wb") as log_file:
                started_at = time.monotonic()
                connections_before = self.sandbox.connections_opened()
                victim = subprocess.Popen(
                    [sys.executable, "-c", _KILLED_INVOCATION_SCRIPT, str(event_path), str(KILL_WINDOW_MS)],
                    cwd=ROOT,
                    env=environ,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
                set_aside: str | None = None
                try:
                    ready_since: float | None = None
                    while True:
                        if victim.poll() is not None:
                            set_aside = "the invocation finished before it could be killed: given back"
                            break
                        now = time.monotonic()
                        if now - started_at > 30:
                            set_aside = "the invocation had not posted within 30 s: killed and given back"
                            break
                        lines = _outcome_lines_in(log_path)
                        finished = {str(line["record_id"]) for line in lines} & record_ids
                        delivered = any(line.get("outcome") == "delivered" for line in lines)
                        in_flight = self.sandbox.in_flight()
                        if delivered and in_flight >= 1:
                            # Every record either finished (its outcome logged) or its post held.
                            ready_since = ready_since or now
                            everyone_out = in_flight + len(finished) >= len(record_ids)
                            if everyone_out or now - ready_since >= KILL_SETTLE_SECONDS:
                                break
                        time.sleep(0.005)
                    sandbox_in_flight = self.sandbox.in_flight()
                    if set_aside is None:
                        os.kill(victim.pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                finally:
                    if victim.poll() is None:
                        victim.kill()
                    victim.wait(timeout=10)
            # Nothing else posts until this returns: every connection opened meanwhile is the victim's.
            time.sleep(KILL_QUIET_SECONDS)
            connections_after = self.sandbox.connections_opened()
            logs = _outcome_lines_in(log_path)
        if set_aside is not None:
            return _Attempt(set_aside, (connections_before, connections_after), tuple(logs))
        return Kill(
            number=len(self.kills) + 1,
            batch_order_ids=frozenset(o for o in order_ids if o is not None),
            postable=tuple(postable),
            held=tuple(held),
            receipt_handles=tuple(str(m["ReceiptHandle"]) for m in messages),
            started_at=started_at,
            killed_at=killed_at,
            connections=(connections_before, connections_after),
            sandbox_in_flight=sandbox_in_flight,
            logs=tuple(logs),
            # The killed batch's messages stay in flight for the queue's visibility timeout (360 s): once
            # the invocation's in-progress window has passed, they are made visible instead.
            release_due=killed_at + KILL_WINDOW_MS / 1000 + RELEASE_MARGIN_SECONDS,
        )

    def _release_due(self) -> None:
        for kill in self.kills:
            if kill.released_at is None and time.monotonic() >= kill.release_due:
                failed = self._make_visible_handles(kill.receipt_handles)
                if failed:
                    self.problems.append(f"kill {kill.number}: could not make {failed} message(s) visible")
                kill.released_at = time.monotonic()

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

    def observe(self) -> _Observed:
        # Answers still held (late "timeout" answers) are accepted or not before anything is counted.
        if not self.sandbox.wait_for(lambda s: s.in_flight() == 0, timeout=KILL_HOLD_SECONDS + 5):
            self.problems.append(f"{self.sandbox.in_flight()} request(s) still held by the sandbox")
        return _Observed(
            environment=self.stack.environment,
            received=self.sandbox.received(),
            dead_letters=self.stack.take_dead_letters(),
            invocations=self.mapping.invocations,
            kills=self.kills,
            kill_attempts=self.kill_attempts,
            problems=self.problems,
        )


# --------------------------------------------------------------------------- accounting


def _account(
    plan: Sequence[Planned], seen: _Observed, orders: int, seed: int, kills: int, wall: float
) -> SoakResult:
    valid_ids = frozenset(p.order_id for p in plan if p.kind == VALID and p.order_id)
    invalid_ids = frozenset(p.order_id for p in plan if p.kind == INVALID and p.order_id)
    received = seen.received

    # The relay's outcome lines (what CloudWatch Logs would hold), the subprocesses' included.
    lines = [line for inv in seen.invocations for line in inv.logs if _is_outcome_line(line)]
    victims: list[Kill | _Attempt] = [*seen.kills, *seen.kill_attempts]
    victim_lines = [line for victim in victims for line in victim.logs]
    outcomes = Counter(str(line["outcome"]) for line in lines)
    killed_outcomes = Counter(str(line["outcome"]) for kill in seen.kills for line in kill.logs)
    retry_reasons = Counter(
        str(line.get("reason", "?")) for line in [*lines, *victim_lines] if line["outcome"] == "retry"
    )
    maybe_received = sum(1 for line in [*lines, *victim_lines] if line.get("maybe_received") is True)

    # The subprocesses' posts (on the connections they opened), and the ones a killed invocation had no
    # answer recorded for when it died: a post is recorded once its record's outcome line is written.
    in_flight_at_kill: dict[int, Kill] = {}  # index in received -> the kill
    gave_up: set[int] = set()  # posts a subprocess timed out on (or lost the connection of) itself
    for victim in victims:
        first, last = victim.connections
        recorded = {str(line.get("order_id")) for line in victim.logs if line.get("attempts")}
        no_answer = {str(line.get("order_id")) for line in victim.logs if line.get("maybe_received") is True}
        for index, request in enumerate(received):
            if not first < request.connection_id <= last:
                continue
            unanswered = request.order_id not in recorded
            if request.order_id in no_answer:
                gave_up.add(index)
            if isinstance(victim, Kill):
                victim.posts += 1
                victim.in_flight += unanswered
                victim.accepted_before_kill += request.accepted and not unanswered
                if unanswered:
                    in_flight_at_kill[index] = victim

    def cause(index: int, request: Received) -> str:
        """Why this accepted post may be a duplicate: the relay got no answer for it (or it did)."""
        if index in in_flight_at_kill:
            return KILL
        if request.fault == "drop_after":
            return DROP_AFTER
        if request.fault == "timeout" or index in gave_up:
            return LATE_TIMEOUT  # in a subprocess, also a held post it gave up on before it died
        return ANSWERED

    accepted_by_order: dict[str, list[str]] = defaultdict(list)
    ambiguous: Counter[str] = Counter()
    kill_of_order: dict[str, Kill] = {}
    for index, request in enumerate(received):
        if not request.accepted or request.order_id is None:
            continue
        why = cause(index, request)
        accepted_by_order[request.order_id].append(why)
        if why != ANSWERED:
            ambiguous[why] += 1
        if why == KILL:
            kill_of_order[request.order_id] = in_flight_at_kill[index]
    # An order accepted n times has n - 1 duplicates. Answered posts: the relay knew the order was
    # credited, so a second one is a duplicate it caused. The others explain one duplicate each (all but
    # one of them, when no post of the order was answered).
    duplicates_by_cause: Counter[str] = Counter()
    for order_id, causes in accepted_by_order.items():
        if len(causes) < 2:
            continue
        answered = causes.count(ANSWERED)
        unanswered_posts = [c for c in causes if c != ANSWERED]
        if answered == 0:
            unanswered_posts = unanswered_posts[:-1]
        duplicates_by_cause[ANSWERED] += max(0, answered - 1)
        for why in unanswered_posts:
            duplicates_by_cause[why] += 1
            if why == KILL:
                kill_of_order[order_id].duplicates += 1
    duplicates_total = sum(len(c) - 1 for c in accepted_by_order.values() if len(c) > 1)

    # The dead-letter queue: quarantined by the relay (with outcome and reason), or moved by the redrive.
    quarantined_by_reason: dict[tuple[str, str], set[str]] = defaultdict(set)
    quarantined_ids: dict[str, set[str]] = defaultdict(set)
    quarantined_per_order: Counter[str] = Counter()
    redriven: list[str] = []
    for message in seen.dead_letters:
        attributes = {k: str(v.get("StringValue")) for k, v in message.get("MessageAttributes", {}).items()}
        order_id = attributes.get("order_id") or _order_id_of_body(str(message["Body"])) or "?"
        if "outcome" in attributes:
            reason = attributes.get("reason", "")
            quarantined_by_reason[(attributes["outcome"], reason)].add(order_id)
            quarantined_per_order[order_id] += 1
            if reason.strip() and reason != "-":
                quarantined_ids[attributes["outcome"]].add(order_id)
        else:
            redriven.append(order_id)
    accepted_ids = set(accepted_by_order)
    dlq_ids = set().union(*quarantined_ids.values(), redriven)
    # A message moved by the redrive policy is explained only as a copy of an order credited anyway
    # (it kept meeting faults, or the order in progress elsewhere, maxReceiveCount times).
    redriven_unexplained = sorted(o for o in redriven if o not in accepted_ids)

    # An invalid record in a killed batch may be quarantined by the victim, then again when it comes back.
    in_killed_batches = set().union(*(kill.batch_order_ids for kill in seen.kills))
    copies = {order_id: n - 1 for order_id, n in quarantined_per_order.items() if n > 1}
    record_events = {r.envelope_id() for inv in seen.invocations for r in inv.records}
    non_order_events = {p.event_id for p in plan if p.kind == NON_ORDER}
    return SoakResult(
        orders=orders,
        seed=seed,
        kills_requested=kills,
        cores=os.cpu_count() or 1,
        wall_seconds=wall,
        overrides={name: seen.environment.get(name, "") for name in _shown_overrides()},
        sent=Counter(p.kind for p in plan),
        valid_ids=valid_ids,
        invalid_ids=invalid_ids,
        delivered=len(valid_ids & accepted_ids),
        undelivered=sorted(valid_ids - accepted_ids),
        lost=sorted(valid_ids - accepted_ids - dlq_ids),
        quarantined=Counter({key: len(ids) for key, ids in quarantined_by_reason.items()}),
        quarantine_copies=sum(copies.values()),
        quarantine_copies_unexplained=sorted(set(copies) - in_killed_batches),
        redriven=sorted(redriven),
        redriven_unexplained=redriven_unexplained,
        invalid_not_quarantined=sorted(invalid_ids - quarantined_ids["invalid"]),
        invalid_posted=sorted({r.order_id for r in received if r.order_id} & invalid_ids),
        unexpected_accepted=sorted(accepted_ids - valid_ids),
        non_orders_on_queue=len(non_order_events & record_events),
        requests=len(received),
        requests_by_fault=Counter(_FAULT_LABELS.get(r.fault or "", r.fault or "none") for r in received),
        duplicates_total=duplicates_total,
        duplicates_by_cause=duplicates_by_cause,
        ambiguous_events=ambiguous,
        maybe_received_lines=maybe_received,
        no_answer_requests=sum(1 for r in received if r.fault in ("drop_before", "drop_after", "timeout")),
        outcomes=outcomes,
        killed_outcomes=killed_outcomes,
        retry_reasons=retry_reasons,
        invocations=len(seen.invocations),
        invocation_errors=[f"invocation {i.number}: {i.error}" for i in seen.invocations if i.error]
        + [
            f"invocation {i.number}: delete failed for {len(i.delete_failures)}"
            for i in seen.invocations
            if i.delete_failures
        ],
        kills=seen.kills,
        kill_attempts=[attempt.reason for attempt in seen.kill_attempts],
        problems=list(seen.problems),
    )


_FAULT_LABELS: Final = {"script_for": "killed batch (scripted)"}


def _check(result: SoakResult) -> None:
    """The guarantees, each a PASS or FAIL line."""
    checks = result.checks
    checks.append((not result.lost, f"lost = {len(result.lost)} {_some(result.lost)}".rstrip()))
    checks.append(
        (
            not result.undelivered,
            f"every valid order delivered: {result.delivered}/{len(result.valid_ids)} "
            f"{_some(result.undelivered)}".rstrip(),
        )
    )
    quarantined_invalid = len(result.invalid_ids) - len(result.invalid_not_quarantined)
    checks.append(
        (
            not result.invalid_not_quarantined and not result.invalid_posted,
            f"every invalid order quarantined with a reason: {quarantined_invalid}/{len(result.invalid_ids)}"
            f", posted to Refersion: {len(result.invalid_posted)}",
        )
    )
    checks.append(
        (
            not result.quarantine_copies_unexplained,
            f"quarantined twice: {result.quarantine_copies} message(s), each of a record in a killed batch "
            f"(unexplained: {len(result.quarantine_copies_unexplained)})",
        )
    )
    checks.append(
        (
            not result.unexpected_accepted and result.non_orders_on_queue == 0,
            f"nothing else credited ({len(result.unexpected_accepted)}), no non-order event on the queue "
            f"({result.non_orders_on_queue})",
        )
    )
    checks.append(
        (
            result.duplicates_unambiguous == 0,
            f"duplicates at the sandbox after 5xx, 429, drop_before, slow or answered posts = "
            f"{result.duplicates_unambiguous}",
        )
    )
    ambiguous = sum(result.ambiguous_events.values())
    checks.append(
        (
            result.duplicates_total <= ambiguous,
            f"duplicates at the sandbox ({result.duplicates_total}) <= posts processed without an answer "
            f"({ambiguous}: drop_after {result.ambiguous_events[DROP_AFTER]} + late timeouts "
            f"{result.ambiguous_events[LATE_TIMEOUT]} + in flight at kills {result.ambiguous_events[KILL]})",
        )
    )
    checks.append(
        (
            len(result.kills) >= result.kills_requested,
            f"invocations killed mid-batch: {len(result.kills)} of {result.kills_requested}",
        )
    )
    for kill in result.kills:
        checks.append(
            (
                kill.duplicates <= kill.in_flight and kill.accepted_before_kill >= 1 and kill.in_flight >= 1,
                f"kill {kill.number}: duplicates {kill.duplicates} <= requests in flight at the kill "
                f"{kill.in_flight} (after {kill.accepted_before_kill} post(s) accepted and recorded)",
            )
        )
    checks.append(
        (
            not result.redriven_unexplained,
            f"messages moved to the DLQ by the redrive policy: {len(result.redriven)}, of orders never "
            f"credited: {len(result.redriven_unexplained)}",
        )
    )
    checks.append((not result.invocation_errors, f"whole-batch failures: {len(result.invocation_errors)}"))
    checks.append((not result.problems, f"run problems: {len(result.problems)}"))
    checks.append((not result.left_behind, f"left behind: {len(result.left_behind)} thread(s) or socket(s)"))


# --------------------------------------------------------------------------- the table


def render(result: SoakResult) -> str:
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


def report(result: SoakResult) -> str:
    """The whole printout: settings, the table, the details and the PASS/FAIL lines."""
    out: list[str] = []

    def add(text: str = "", indent: int = 2) -> None:
        if not text:
            out.append("")
            return
        prefix = " " * indent
        out.append(textwrap.fill(text, width=108, initial_indent=prefix, subsequent_indent=prefix + "  "))

    add(
        f"Refersion relay fault-injection soak: {result.orders} orders, seed {result.seed}, "
        f"{result.cores} core(s), wall time {result.wall_seconds:.1f} s",
        indent=0,
    )
    add(
        "function environment overrides (template.yaml otherwise): "
        + ", ".join(f"{k}={v}" for k, v in result.overrides.items())
    )
    add(
        "as in template.yaml: queue visibility timeout 360 s, maxReceiveCount 12, batch size 10, batching "
        "window 1 s, function timeout 60 s, REFERSION_MAX_CONCURRENCY 10"
    )
    weights = ", ".join(f"{name} {FAULT_WEIGHTS[name]:g}%" for name in FAULTS if name in FAULT_WEIGHTS)
    add(
        f"sandbox answers: {weights}; timeout = processed, answered after {FAULT_DELAY_SECONDS:g} s (the "
        f"relay waits {result.overrides.get('REFERSION_TIMEOUT_SECONDS')} s); slow = answered after "
        f"{SLOW_SECONDS:g} s; 429 with Retry-After: 1"
    )
    add(
        f"kills: {len(result.kills)} batch(es) run in a subprocess (context: {KILL_WINDOW_MS} ms remaining) "
        f"and SIGKILLed mid-batch, the sandbox answering half their posts at once and holding the others "
        f"{KILL_HOLD_SECONDS:g} s. Their messages were made visible again "
        f"{KILL_WINDOW_MS / 1000 + RELEASE_MARGIN_SECONDS:g} s after the kill with "
        "ChangeMessageVisibility(VisibilityTimeout=0): this stands for the queue's 360 s visibility timeout "
        "elapsing."
    )
    add()
    out.append(render(result))
    add()
    add(
        f"{result.requests} requests at the sandbox, by answer: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.requests_by_fault.items()))
    )
    add(
        f"{result.invocations} invocations by the poller; their outcome lines: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
    )
    if result.killed_outcomes:
        add(
            "outcome lines the killed invocation(s) wrote before dying: "
            + ", ".join(f"{k} {v}" for k, v in sorted(result.killed_outcomes.items()))
        )
    add("retries by reason: " + "; ".join(f"{k}: {v}" for k, v in result.retry_reasons.most_common()))
    add(
        f"retries logged with maybe_received=true: {result.maybe_received_lines} (requests dropped before or "
        f"after processing, or answered after the timeout: {result.no_answer_requests}; the relay cannot "
        "tell a drop before processing from one after)"
    )
    for kill in result.kills:
        add(
            f"kill {kill.number}: a batch of {len(kill.receipt_handles)} messages, {len(kill.postable)} of "
            f"their orders not credited yet ({len(kill.postable) - len(kill.held)} answered at once, "
            f"{len(kill.held)} held); SIGKILL {kill.killed_at - kill.started_at:.2f} s after the process "
            f"started. It had sent {kill.posts} post(s): {kill.accepted_before_kill} answered and recorded, "
            f"{kill.in_flight} without an answer when it died (sandbox.in_flight() at SIGKILL: "
            f"{kill.sandbox_in_flight}); orders credited twice as a result: {kill.duplicates}"
        )
    for attempt in result.kill_attempts:
        add(f"kill attempt set aside: {attempt}")
    add(
        "drop_after, late-accepted timeouts and kills are one and the same window: Refersion processed a "
        "post whose answer never reached the relay, which then posts the order again (its retry is logged "
        "with maybe_received=true). Refersion documents no de-duplication, so no sender can close this "
        "window without the receiver's help; every other fault causes no duplicate."
    )
    for text in [
        *result.problems,
        *result.invocation_errors,
        *(f"left behind: {x}" for x in result.left_behind),
    ]:
        add(f"! {text}")
    add()
    for ok, text in result.checks:
        add(f"{'PASS' if ok else 'FAIL'}  {text}", indent=0)
    add()
    add("soak PASSED" if result.passed else "soak FAILED", indent=0)
    return "\n".join(out)


# --------------------------------------------------------------------------- helpers


def _shown_overrides() -> list[str]:
    return sorted({*FAST_OVERRIDES, *SOAK_OVERRIDES})


def _order_id_of_body(body: str) -> str | None:
    try:
        envelope = json.loads(body)
        value = envelope["detail"]["properties"]["order_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return None if value is None else str(value)


def _is_outcome_line(line: Mapping[str, Any]) -> bool:
    return isinstance(line.get("outcome"), str) and isinstance(line.get("record_id"), str)


def _outcome_lines_in(path: Path) -> list[dict[str, Any]]:
    """The complete JSON outcome lines a (possibly killed) process wrote to this file."""
    lines: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        text = path.read_bytes().decode("utf-8", "replace")
        for raw in text.split("\n")[:-1]:  # the last piece may be a line cut short by the kill
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and _is_outcome_line(line):
                lines.append(line)
    return lines


def _some(items: Iterable[str], limit: int = 5) -> str:
    shown = list(items)
    if not shown:
        return ""
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return "(" + ", ".join(shown[:limit]) + more + ")"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.soak", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders", type=int, default=DEFAULT_ORDERS, help=f"valid orders (default {DEFAULT_ORDERS})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"fault and data seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--kills", type=int, default=DEFAULT_KILLS, help=f"invocations to kill (default {DEFAULT_KILLS})"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to drain the queue before giving up"
    )
    args = parser.parse_args(argv)
    out = out or sys.stdout
    print(
        f"Soak: {args.orders} orders, seed {args.seed}, {args.kills} kill(s), on a local stack "
        f"(moto + Refersion sandbox); polling until the queue is drained...",
        file=out,
        flush=True,
    )
    result = run_soak(args.orders, args.seed, args.kills, timeout=args.timeout, progress=out)
    print(report(result), file=out, flush=True)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
