"""The demo's rows: one published event each, matched to the relay's outcome log lines, shown as a table."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from local.poller import EventSourceMapping

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
