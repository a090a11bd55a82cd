"""Figure 1, batch wall time: warm 10-record batches at concurrency 10 and 1 against the sandbox's
latency, 1,000 records as 100 invocations of 10, and the same with the idempotency ledger."""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.harness import TARGET_BATCH_X_LATENCY, TARGET_SPEEDUP, Stack, invoke, quiet_relay
from bench.report import Report, Row, ms
from bench.workloads import seed_batch

_PER_RUN = 2  # warm invocations per concurrency and run


@dataclass
class BatchFigures:
    ten: dict[int, float]  # concurrency -> median wall time of a warm 10-record batch
    thousand: dict[int, float]  # concurrency -> wall time of 100 invocations of 10


@dataclass
class _Measured:
    """Every wall time the batch figures and notes are made of."""

    samples: dict[int, list[float]] = field(default_factory=lambda: {10: [], 1: []})
    first: dict[int, list[float]] = field(default_factory=lambda: {10: [], 1: []})
    ten: dict[int, float] = field(default_factory=dict)
    thousand: dict[int, float] = field(default_factory=dict)
    thousand_runs: int = 1
    reopened: int = 0
    single_call: float | None = None
    overhead: dict[int, float] = field(default_factory=dict)
    volume: tuple[int, int, int] = (0, 0, 0)
    idempotent: float = 0.0


def log_volume(event: dict[str, Any]) -> tuple[int, int, int]:
    """What one invocation writes: (log lines, bytes of log lines, bytes of EMF documents)."""
    from handler.observability import logger

    lines, emf = io.StringIO(), io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(lines)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(emf):
            invoke(event)
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
    text = lines.getvalue()
    return text.count("\n"), len(text.encode()), len(emf.getvalue().encode())


def _ten_record_batches(stack: Stack, found: _Measured, *, runs: int) -> None:
    # Interleaved, so that drift of the machine hits both configurations alike.
    for run in range(runs):
        for concurrency in (10, 1) if run % 2 == 0 else (1, 10):
            stack.configure(concurrency)
            found.first[concurrency].append(invoke(seed_batch(10)))  # builds the relay, opens connections
            events = [seed_batch(10) for _ in range(_PER_RUN)]
            found.samples[concurrency] += [invoke(event) for event in events]
    stack.expect_accepted(runs * 2 * (_PER_RUN + 1) * 10)
    found.ten = {c: statistics.median(s) for c, s in found.samples.items()}


def _hundred_invocations() -> float:
    """Wall time of 100 sequential invocations of 10 on one warm relay."""
    events = [seed_batch(10) for _ in range(100)]
    started = time.perf_counter()
    for event in events:
        invoke(event)
    return time.perf_counter() - started


def _thousand_records(stack: Stack, found: _Measured, *, runs: int, quick: bool) -> None:
    found.thousand_runs = 1 if quick else min(runs, 3)
    stack.configure(10)
    invoke(seed_batch(10))
    opened = stack.sandbox.connections_opened()
    walls = [_hundred_invocations() for _ in range(found.thousand_runs)]
    found.thousand[10] = statistics.median(walls)
    found.reopened = stack.sandbox.connections_opened() - opened
    stack.expect_accepted(10 + found.thousand_runs * 1000)
    if quick:
        found.thousand[1] = 100 * found.ten[1]  # sequential: 100 times a 10-record batch (estimated)
        return
    stack.configure(1)
    invoke(seed_batch(10))
    found.thousand[1] = _hundred_invocations()
    stack.expect_accepted(1010)
    stack.configure(10)
    invoke(seed_batch(10))
    found.single_call = invoke(seed_batch(1000))
    stack.expect_accepted(1010)


def _fixed_costs(stack: Stack, found: _Measured, *, latency: float, runs: int, quick: bool) -> None:
    # The fixed cost under the latency: relay and sandbox CPU (one process, one GIL), thread hand-offs.
    stack.sandbox.set_latency(0.0)
    for concurrency in (10, 1):
        stack.configure(concurrency)
        invoke(seed_batch(10))
        found.overhead[concurrency] = statistics.median([invoke(seed_batch(10)) for _ in range(5)])
    stack.expect_accepted(2 * 60)
    stack.sandbox.set_latency(latency)

    found.volume = log_volume(seed_batch(10))
    stack.expect_accepted(10)

    stack.configure(10, idempotency=True)
    invoke(seed_batch(10))
    idempotent_runs = 2 if quick else 2 * runs
    found.idempotent = statistics.median([invoke(seed_batch(10)) for _ in range(idempotent_runs)])
    stack.expect_accepted(10 * (1 + idempotent_runs))
    stack.configure(10)


def measure_batches(stack: Stack, report: Report, *, latency: float, runs: int, quick: bool) -> BatchFigures:
    stack.sandbox.set_latency(latency)
    found = _Measured()
    with quiet_relay():
        _ten_record_batches(stack, found, runs=runs)
        _thousand_records(stack, found, runs=runs, quick=quick)
        _fixed_costs(stack, found, latency=latency, runs=runs, quick=quick)
    _add_rows(report, found, latency=latency, quick=quick)
    _add_notes(report, found, runs=runs, quick=quick)
    return BatchFigures(found.ten, found.thousand)


def _add_rows(report: Report, found: _Measured, *, latency: float, quick: bool) -> None:
    ten, thousand = found.ten, found.thousand
    report.add(
        Row(
            "10-record batch, concurrency 10",
            ms(ten[10]),
            f"latency {ms(latency)}",
            ten[10] / latency if latency else None,
            f"<= {TARGET_BATCH_X_LATENCY:g}x" if latency else "-",
            ten[10] <= TARGET_BATCH_X_LATENCY * latency if latency else None,
        )
    )
    speedup = ten[1] / ten[10]
    report.add(
        Row(
            "10-record batch, concurrency 1 vs 10",
            ms(ten[1]),
            f"c=10 {ms(ten[10])}",
            speedup,
            f">= {TARGET_SPEEDUP:g}x",
            speedup >= TARGET_SPEEDUP,
        )
    )
    report.add(
        Row(
            "1,000 records (100 x 10), concurrency 10",
            ms(thousand[10]),
            f"100 x latency {ms(100 * latency)}",
            thousand[10] / (100 * latency) if latency else None,
        )
    )
    report.add(
        Row(
            "1,000 records (100 x 10), concurrency 1" + (" (est.)" if quick else ""),
            ms(thousand[1]),
            f"c=10 {ms(thousand[10])}",
            thousand[1] / thousand[10],
        )
    )
    report.add(
        Row(
            "10-record batch, c=10, idempotency (moto)",
            ms(found.idempotent),
            f"without {ms(ten[10])}",
            found.idempotent / ten[10],
        )
    )


def _add_notes(report: Report, found: _Measured, *, runs: int, quick: bool) -> None:
    section = "Batches"
    report.note(
        section,
        f"10-record batch: median of {len(found.samples[10])} warm invocations per concurrency ({runs} runs "
        f"x {_PER_RUN}, c=10 and c=1 interleaved); the relay is rebuilt at each switch",
    )
    report.note(
        section,
        f"first invocation after a rebuild (secret fetch, new connections): c=10 "
        f"{ms(statistics.median(found.first[10]))}, c=1 {ms(statistics.median(found.first[1]))}",
    )
    report.note(
        section,
        f"1,000 records: 100 sequential invocations of 10 on one warm relay (BatchSize 10, as deployed); "
        f"c=10 median of {found.thousand_runs} run(s), c=1 "
        + ("estimated as 100 x the 10-record c=1 median (--quick)" if quick else "1 run"),
    )
    report.note(
        section, f"new connections opened during the c=10 1,000-record run(s): {found.reopened} (keep-alive)"
    )
    if found.single_call is not None:
        report.note(
            section,
            f"one invocation of 1,000 records, c=10: {ms(found.single_call)} "
            f"({found.single_call / found.thousand[10]:.2f}x the 100 x 10 figure)",
        )
    report.note(
        section,
        f"10-record batch at latency 0 (relay + sandbox CPU in this process): c=10 {ms(found.overhead[10])}, "
        f"c=1 {ms(found.overhead[1])}",
    )
    lines, line_bytes, emf_bytes = found.volume
    report.note(
        section,
        f"output of one 10-record invocation at INFO: {lines} log lines, {line_bytes:,} bytes "
        f"({line_bytes // max(lines, 1):,} per line) + {emf_bytes:,} bytes of EMF metrics",
    )
    report.note(
        section,
        "idempotency row: 2 moto DynamoDB calls per record in this process (GIL-bound); "
        "real DynamoDB latency differs, read it as an upper bound of the ledger's cost here",
    )
