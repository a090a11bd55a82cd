"""Reading what the relay wrote: its JSON outcome lines, and the order id inside a queued message's body."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def order_id_of_body(body: str) -> str | None:
    try:
        envelope = json.loads(body)
        value = envelope["detail"]["properties"]["order_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return None if value is None else str(value)


def is_outcome_line(line: Mapping[str, Any]) -> bool:
    return isinstance(line.get("outcome"), str) and isinstance(line.get("record_id"), str)


def outcome_lines_in(path: Path) -> list[dict[str, Any]]:
    """The complete JSON outcome lines a (possibly killed) process wrote to this file."""
    lines: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        text = path.read_bytes().decode("utf-8", "replace")
        for raw in text.split("\n")[:-1]:  # the last piece may be a line cut short by the kill
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and is_outcome_line(line):
                lines.append(line)
    return lines
