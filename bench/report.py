"""The benchmark's printout: a table of figures (value, reference, ratio, target) and notes by section."""

from __future__ import annotations

import contextlib
import os
import platform
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Row:
    figure: str
    value: str
    reference: str
    ratio: float | None
    target: str = "-"
    ok: bool | None = None  # None: informational, no target


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def note(self, section: str, line: str) -> None:
        self.notes[section].append(line)

    def render(self) -> str:
        headers = ("figure", "value", "reference", "ratio", "target", "result")
        cells = [
            (
                row.figure,
                row.value,
                row.reference,
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                row.target,
                "info" if row.ok is None else ("PASS" if row.ok else "FAIL"),
            )
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in [headers, *cells]) for i in range(len(headers))]
        out = [
            " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
            "-+-".join("-" * w for w in widths),
        ]
        out += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
        for section, lines in self.notes.items():
            out += ["", f"{section}:"] + [f"  {line}" for line in lines]
        return "\n".join(out)

    def verdict(self) -> str:
        judged = [row for row in self.rows if row.ok is not None]
        missed = [row.figure for row in judged if not row.ok]
        text = f"targets met: {len(judged) - len(missed)} of {len(judged)}"
        return text + (f"; missed: {'; '.join(missed)}" if missed else "")


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.machine()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"
