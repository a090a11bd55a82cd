"""The relay end to end on a local stack: ``python -m local.demo`` (what ``make demo`` runs).

Publishes four Datafly events on the local order events bus (PutEvents), lets the local SQS event
source run the real handler until the queue is drained, and shows what happened to each event: the
seed's example (delivered), a page view (filtered out by the rule), an invalid order (quarantined in
the dead-letter queue) and an order Refersion's sandbox refuses once with a 503 (retried, then
delivered). Outcomes are read from the function's JSON log lines, as an operator reads CloudWatch Logs.

Exits 0 when everything happened as described, 1 otherwise. No AWS account, Docker or network needed.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from local.lambda_shapes import load_event
from local.poller import EventSourceMapping
from local.sandbox import Reply
from local.stack import LocalStack

DRAIN_TIMEOUT_SECONDS = 45.0
QUARANTINED = ("invalid", "rejected")
FILTERED = "filtered by the rule"


@dataclass
class Row:
    """One published event and what became of it."""

    label: str
    detail: dict[str, Any]
    expected: str  # the final outcome the demo expects
    event_id: str = ""
    message_ids: set[str] = field(default_factory=set)
    outcomes: list[Mapping[str, Any]] = field(default_factory=list)  # its outcome log lines, in order

    @property
    def order_id(self) -> str:
        properties = self.detail.get("properties")
        order_id = properties.get("order_id") if isinstance(properties, dict) else None
        return "-" if order_id is None else str(order_id)

    @property
    def event_name(self) -> str:
        if isinstance(self.detail.get("event"), str):
            return str(self.detail["event"])
        name = self.detail.get("name")
        return f"{self.detail.get('type', '?')} ({name})" if name else str(self.detail.get("type", "?"))

    @property
    def outcome(self) -> str:
        if not self.message_ids:
            return FILTERED
        return str(self.outcomes[-1]["outcome"]) if self.outcomes else "no outcome logged"

    @property
    def reason(self) -> str:
        if not self.message_ids:
            return "not an Order Completed event: the rule kept it off the queue"
        steps = [
            f"{line['outcome']} ({line['reason']})" if line.get("reason") else str(line["outcome"])
            for line in self.outcomes
        ]
        if len(steps) > 1:
            return ", then ".join(steps)
        last = self.outcomes[-1] if self.outcomes else {}
        return str(last.get("reason") or "-")


def scenario() -> list[Row]:
    return [
        Row("seed's example", load_event("datafly/seed-order.json"), expected="delivered"),
        Row("page view", load_event("datafly/page-view.json"), expected=FILTERED),
        Row("invalid order", load_event("datafly/invalid-order.json"), expected="invalid"),
        Row("refused once", load_event("datafly/second-order.json"), expected="delivered"),
    ]


@contextmanager
def relay_logs_to(buffer: TextIO) -> Iterator[None]:
    """The relay's log lines go to ``buffer`` (our CloudWatch Logs) instead of stdout."""
    from handler.observability import logger

    stream_handler = logger.registered_handler
    previous = stream_handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        stream_handler.setStream(previous)  # type: ignore[attr-defined]


def outcome_lines(log_text: str) -> list[dict[str, Any]]:
    """The relay's per-record outcome lines among its JSON log lines."""
    lines: list[dict[str, Any]] = []
    for text in log_text.splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and "outcome" in line and "record_id" in line:
            lines.append(line)
    return lines


def attach(rows: Sequence[Row], mapping: EventSourceMapping, lines: Sequence[Mapping[str, Any]]) -> None:
    """Event id (PutEvents) -> SQS message id (the envelope in the body) -> outcome lines (record_id)."""
    by_event = {row.event_id: row for row in rows}
    by_message: dict[str, Row] = {}
    for record in mapping.records():
        row = by_event.get(record.envelope_id() or "")
        if row is not None:
            row.message_ids.add(record.message_id)
            by_message[record.message_id] = row
    for line in lines:
        row = by_message.get(str(line["record_id"]))
        if row is not None:
            row.outcomes.append(line)


def shown(outcome: str) -> str:
    return f"{outcome} (in the DLQ)" if outcome in QUARANTINED else outcome


def table(rows: Sequence[Row]) -> str:
    header = ("order id", "event", "outcome", "attempts", "reason")
    cells = [(r.order_id, r.event_name, shown(r.outcome), str(len(r.outcomes)), r.reason) for r in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(4)]

    def render(line: Sequence[str]) -> str:
        return (
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
            + ("  " + line[4])
        )

    return "\n".join([render(header), render(["-" * w for w in widths] + ["-" * 6]), *map(render, cells)])


def problems_of(
    rows: Sequence[Row], stack: LocalStack, dead_letters: Sequence[Mapping[str, Any]]
) -> list[str]:
    problems = [
        f"{row.label}: expected {row.expected}, got {row.outcome}"
        for row in rows
        if row.outcome != row.expected
    ]
    accepted = stack.sandbox.accepted_order_ids()
    for row in rows:
        if row.expected == "delivered" and accepted.count(row.order_id) != 1:
            problems.append(
                f"{row.label}: Refersion credited order {row.order_id} {accepted.count(row.order_id)} times"
            )
    if stack.sandbox.duplicates():
        problems.append(f"orders credited twice: {stack.sandbox.duplicates()}")
    quarantined = sorted(str(m["MessageAttributes"]["outcome"]["StringValue"]) for m in dead_letters)
    expected_quarantine = sorted(row.expected for row in rows if row.expected in QUARANTINED)
    if quarantined != expected_quarantine:
        problems.append(f"dead-letter queue holds {quarantined}, expected {expected_quarantine}")
    return problems


def _print_settings(stack: LocalStack, out: TextIO) -> None:
    settings, resources = stack.settings, stack.resources
    print(
        "Refersion relay on a local stack (moto + Refersion sandbox), settings from template.yaml",
        file=out,
    )
    print(
        f"  bus {resources.bus_name} -> rule {resources.rule_name} -> queue {resources.queue_name}",
        file=out,
    )
    print(
        f"  queue: visibility {settings.queue_visibility_timeout} s, to {resources.dlq_name} after "
        f"{settings.max_receive_count} receives; function {settings.function_handler}: batch "
        f"{settings.batch_size}, window {settings.maximum_batching_window} s, "
        f"timeout {settings.function_timeout} s",
        file=out,
    )
    print(f"  Refersion sandbox: {stack.sandbox.url}", file=out)


def _print_what_came_out(
    stack: LocalStack, seed: Row, dead_letters: list[dict[str, Any]], out: TextIO
) -> None:
    seed_requests = [r for r in stack.sandbox.received() if r.order_id == seed.order_id]
    print(
        f"\nBody Refersion received for the seed's example (order {seed.order_id}), pretty-printed:",
        file=out,
    )
    for request in seed_requests:
        print(json.dumps(json.loads(request.body), indent=2, ensure_ascii=False), file=out)
    print(f"\nDead-letter queue: {len(dead_letters)} message(s)", file=out)
    for message in dead_letters:
        attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
        print(
            f"  outcome={attributes.get('outcome')} order_id={attributes.get('order_id', '-')} "
            f"reason={attributes.get('reason')}",
            file=out,
        )


def _run(stack: LocalStack, rows: list[Row], out: TextIO) -> list[str]:
    """Publish the scenario, drain the queue, print what happened; the problems found."""
    seed, refused = rows[0], rows[3]
    log_buffer = io.StringIO()  # what CloudWatch Logs would hold
    _print_settings(stack, out)
    stack.sandbox.script_for(refused.order_id, Reply(status=503))
    for row, event_id in zip(rows, stack.publish_all(row.detail for row in rows), strict=True):
        row.event_id = event_id
    print(
        f"\nPublished {len(rows)} events on {stack.resources.bus_name}; the sandbox answers 503 once for "
        f"order {refused.order_id}. Polling until the queue is drained...\n",
        file=out,
    )
    mapping = stack.mapping()
    with relay_logs_to(log_buffer):
        invocations = mapping.run_until_drained(DRAIN_TIMEOUT_SECONDS)
    lines = outcome_lines(log_buffer.getvalue())
    attach(rows, mapping, lines)
    dead_letters = stack.take_dead_letters()
    print(table(rows), file=out)
    _print_what_came_out(stack, seed, dead_letters, out)
    metrics = sum(len(i.metrics) for i in invocations)
    print(
        f"\n{len(invocations)} invocation(s), {len(lines)} outcome log line(s) and {metrics} EMF metric "
        f"document(s) captured.",
        file=out,
    )
    return problems_of(rows, stack, dead_letters)


def main(out: TextIO | None = None) -> int:
    out = out or sys.stdout
    started = time.monotonic()
    rows = scenario()
    stack = LocalStack()
    try:
        stack.start()
        problems = _run(stack, rows, out)
    except Exception as exc:
        problems = [f"the demo failed: {type(exc).__name__}: {exc}"]
    finally:
        stack.stop()
    problems.extend(f"left behind after stop: {item}" for item in stack.left_behind)
    print(f"Stopped the stack after {time.monotonic() - started:.1f} s", end="", file=out)
    if problems:
        print("; UNEXPECTED:", file=out)
        for problem in problems:
            print(f"  - {problem}", file=out)
        return 1
    print(": no thread or listening socket left behind.", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
