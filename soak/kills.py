"""The kills: a batch received as the poller would, run in a subprocess, and SIGKILLed mid-batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from local.sandbox import RefersionSandbox
from soak.lines import outcome_lines_in
from soak.settings import (
    KILL_QUIET_SECONDS,
    KILL_SETTLE_SECONDS,
    KILL_WINDOW_MS,
    RELEASE_MARGIN_SECONDS,
    ROOT,
    SRC,
)

KILLED_INVOCATION_SCRIPT: Final = (
    "import json, sys\n"
    "from handler.app import lambda_handler\n"
    "from local.lambda_shapes import FakeLambdaContext\n"
    "with open(sys.argv[1], encoding='utf-8') as source:\n"
    "    event = json.load(source)\n"
    "lambda_handler(event, FakeLambdaContext(remaining_ms=float(sys.argv[2])))\n"
)


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
class Attempt:
    """A kill that could not be done with this batch: given back to the queue.

    When the subprocess ran (and finished before it could be killed), its posts are accounted for as
    any other's: ``connections`` and ``logs`` say which they were and what it made of them."""

    reason: str
    connections: tuple[int, int] = (0, 0)
    logs: tuple[dict[str, Any], ...] = ()


def postable_orders(
    order_ids: Sequence[str | None], valid_ids: Collection[str | None], credited: Collection[str]
) -> list[str]:
    """The batch's valid orders Refersion has not credited yet, each once, in batch order."""
    postable: list[str] = []
    for order_id in order_ids:
        if order_id and order_id in valid_ids and order_id not in credited and order_id not in postable:
            postable.append(order_id)
    return postable


def _start_victim(event_path: Path, log_file: BinaryIO) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,  # the function's environment, applied by the stack
        "PYTHONPATH": f"{SRC}{os.pathsep}{ROOT}",
        "PYTHONUNBUFFERED": "1",  # every log line reaches the file before the kill
    }
    return subprocess.Popen(
        [sys.executable, "-c", KILLED_INVOCATION_SCRIPT, str(event_path), str(KILL_WINDOW_MS)],
        cwd=ROOT,
        env=environ,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )


def _wait_for_the_moment(
    victim: subprocess.Popen[bytes],
    sandbox: RefersionSandbox,
    log_path: Path,
    record_ids: set[str],
    started_at: float,
) -> str | None:
    """Wait until a post is answered and one held; the reason to give the batch back, or None to kill."""
    ready_since: float | None = None
    while True:
        if victim.poll() is not None:
            return "the invocation finished before it could be killed: given back"
        now = time.monotonic()
        if now - started_at > 30:
            return "the invocation had not posted within 30 s: killed and given back"
        lines = outcome_lines_in(log_path)
        finished = {str(line["record_id"]) for line in lines} & record_ids
        delivered = any(line.get("outcome") == "delivered" for line in lines)
        in_flight = sandbox.in_flight()
        if delivered and in_flight >= 1:
            # Every record either finished (its outcome logged) or its post held.
            ready_since = ready_since or now
            everyone_out = in_flight + len(finished) >= len(record_ids)
            if everyone_out or now - ready_since >= KILL_SETTLE_SECONDS:
                return None
        time.sleep(0.005)


@dataclass(frozen=True)
class _Run:
    """What happened to the victim process."""

    set_aside: str | None
    started_at: float
    killed_at: float
    sandbox_in_flight: int
    connections: tuple[int, int]
    logs: tuple[dict[str, Any], ...]


def _run_victim(sandbox: RefersionSandbox, event: dict[str, Any], record_ids: set[str]) -> _Run:
    with tempfile.TemporaryDirectory(prefix="soak-kill-") as scratch:
        event_path, log_path = Path(scratch, "event.json"), Path(scratch, "stdout.jsonl")
        event_path.write_text(json.dumps(event), encoding="utf-8")
        with log_path.open("wb") as log_file:
            started_at = time.monotonic()
            connections_before = sandbox.connections_opened()
            victim = _start_victim(event_path, log_file)
            try:
                set_aside = _wait_for_the_moment(victim, sandbox, log_path, record_ids, started_at)
                sandbox_in_flight = sandbox.in_flight()
                if set_aside is None:
                    os.kill(victim.pid, signal.SIGKILL)
                killed_at = time.monotonic()
            finally:
                if victim.poll() is None:
                    victim.kill()
                victim.wait(timeout=10)
        # Nothing else posts until this returns: every connection opened meanwhile is the victim's.
        time.sleep(KILL_QUIET_SECONDS)
        connections = (connections_before, sandbox.connections_opened())
        logs = tuple(outcome_lines_in(log_path))
    return _Run(set_aside, started_at, killed_at, sandbox_in_flight, connections, logs)


def run_and_kill(
    sandbox: RefersionSandbox,
    event: dict[str, Any],
    messages: list[dict[str, Any]],
    order_ids: list[str | None],
    postable_and_held: tuple[list[str], list[str]],
    *,
    number: int,
) -> Kill | Attempt:
    """Run the batch's Lambda event in a subprocess and SIGKILL it once a post is answered and one held.

    ``postable_and_held``: the batch's orders to post, and those of them whose post the sandbox holds.
    """
    postable, held = postable_and_held
    run = _run_victim(sandbox, event, {str(m["MessageId"]) for m in messages})
    if run.set_aside is not None:
        return Attempt(run.set_aside, run.connections, run.logs)
    return Kill(
        number=number,
        batch_order_ids=frozenset(o for o in order_ids if o is not None),
        postable=tuple(postable),
        held=tuple(held),
        receipt_handles=tuple(str(m["ReceiptHandle"]) for m in messages),
        started_at=run.started_at,
        killed_at=run.killed_at,
        connections=run.connections,
        sandbox_in_flight=run.sandbox_in_flight,
        logs=run.logs,
        # The killed batch's messages stay in flight for the queue's visibility timeout (360 s): once
        # the invocation's in-progress window has passed, they are made visible instead.
        release_due=run.killed_at + KILL_WINDOW_MS / 1000 + RELEASE_MARGIN_SECONDS,
    )
