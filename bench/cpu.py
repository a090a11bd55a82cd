"""Figure 2, CPU per record: the relay's per-record path against a bare json.loads + json.dumps, single
thread and no network; and the relay's CPU per warm 10-record batch in a process of its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import (
    FULL_VCPU_MB,
    FUNCTION_MEMORY_MB,
    PUBLIC_KEY,
    SECRET_KEY,
    TARGET_CPU_RATIO,
    BenchError,
    Stack,
    child_environ,
    median_ms_as_seconds,
    per_call_seconds,
    quiet_relay,
    run_child,
)
from bench.report import Report, Row, ms, us
from bench.workloads import RECORD_LIMIT, large_order_body, seed_batch, seed_body

if TYPE_CHECKING:
    from mapping import RefersionOrder

Timer = Callable[[Callable[[], object]], float]


def _timer(*, quick: bool) -> Timer:
    repeats, min_time = (3, 0.02) if quick else (7, 0.1)

    def timed(fn: Callable[[], object]) -> float:
        return per_call_seconds(fn, repeats=repeats, min_time=min_time)

    return timed


def _relay_path(body: str) -> Callable[[], bytes]:
    from handler.triggers import InboundRecord, datafly_event_of
    from mapping import EventKind, classify_event, consent_denied, map_order

    def run() -> bytes:
        event = datafly_event_of(InboundRecord(record_id="bench", raw_body=body))  # loads + envelope
        if classify_event(event) is not EventKind.ORDER_COMPLETED:
            raise BenchError("the benchmark's order is not classified as an Order Completed event")
        consent_denied(event, "marketing")
        return map_order(event).to_json_bytes()

    return run


def _bare(body: str) -> Callable[[], str]:
    return lambda: json.dumps(json.loads(body))


def measure_cpu(report: Report, *, quick: bool) -> float:
    """Single thread, no network: the per-record path against a bare json.loads + json.dumps.

    Returns the path's CPU per record, in seconds.
    """
    timed = _timer(quick=quick)
    body = seed_body()
    path = timed(_relay_path(body))
    reference = timed(_bare(body))
    report.add(
        Row(
            "CPU/record: parse+validate+map+serialize",
            us(path),
            f"json loads+dumps {us(reference)}",
            path / reference,
            f"<= {TARGET_CPU_RATIO:g}x",
            path / reference <= TARGET_CPU_RATIO,
        )
    )
    _note_stages(report, timed, body, path)
    _note_around(report, timed, body, path)
    _measure_big_order(report, timed)
    return path


def _note_stages(report: Report, timed: Timer, body: str, path: float) -> None:
    """Where the path's time goes, stage by stage (each stage on the previous stage's output)."""
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

    from mapping import DataflyEvent, RefersionOrder, classify_event, consent_denied, map_order
    from mapping.order import _body_from

    envelope = json.loads(body)
    detail = envelope["detail"]
    parsed = DataflyEvent.model_validate(detail)
    order = map_order(detail)
    stages = {
        "json.loads of the SQS body": lambda: json.loads(body),
        "EventBridge envelope (EventBridgeModel)": lambda: EventBridgeModel.model_validate(envelope),
        "classify_event + consent_denied": lambda: (
            classify_event(detail),
            consent_denied(detail, "marketing"),
        ),
        "map_order: DataflyEvent validation": lambda: DataflyEvent.model_validate(detail),
        "map_order: RefersionOrder build + validation": lambda: RefersionOrder.model_validate(
            _body_from(parsed)
        ),
        "RefersionOrder.to_json_bytes": order.to_json_bytes,
    }
    section = "CPU per record, seed order (single thread, median per call)"
    for name, fn in stages.items():
        report.note(section, f"{name:48s} {us(timed(fn)):>10s}")
    report.note(section, f"{'= the path above, measured as one call':48s} {us(path):>10s}")


def _log_line_seconds(timed: Timer, order: RefersionOrder) -> tuple[float, float]:
    """The outcome log line and its 2 metrics per record: (logs at INFO, logs at WARNING)."""
    from handler.observability import logger, metrics, report_outcome
    from handler.outcomes import Outcome, RecordResult

    result = RecordResult(
        "bench",
        Outcome.DELIVERED,
        order_id=order.order_id,
        cart_id=order.cart_id,
        http_status=200,
        latency_ms=51.3,
        attempts=1,
        body_logged=order.to_log_dict(),
    )
    with quiet_relay():
        log_info = timed(lambda: report_outcome(result))
        level = logger.log_level
        logger.setLevel("WARNING")
        try:
            log_off = timed(lambda: report_outcome(result))
        finally:
            logger.setLevel(level)
        metrics.clear_metrics()
    return log_info, log_off


def _note_around(report: Report, timed: Timer, body: str, path: float) -> None:
    """What else the relay spends per record around that path (not in the target's figure)."""
    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

    from local.lambda_shapes import sqs_record
    from mapping import map_order

    order = map_order(json.loads(body)["detail"])
    record = sqs_record(body)
    extra = {
        "SqsRecordModel (Powertools parser model)": lambda: SqsRecordModel.model_validate(record),
        "to_log_dict (masked body for the outcome line)": order.to_log_dict,
    }
    log_info, log_off = _log_line_seconds(timed, order)
    section = "Around the path, per record (not in the figure above)"
    around = 0.0
    for name, fn in extra.items():
        seconds = timed(fn)
        around += seconds
        report.note(section, f"{name:58s} {us(seconds):>10s}")
    report.note(section, f"{'outcome log line (INFO, JSON to a sink) + 2 metrics':58s} {us(log_info):>10s}")
    report.note(
        section, f"{'the same with POWERTOOLS_LOG_LEVEL=WARNING (metrics only)':58s} {us(log_off):>10s}"
    )
    whole = path + around + log_info
    report.note(
        section,
        f"whole CPU per delivered record, HTTP excluded: {us(whole)} "
        f"({(log_info - log_off) / whole:.0%} of it is the log line)",
    )
    report.add(
        Row(
            "CPU/record: outcome log line (INFO)",
            us(log_info - log_off),
            f"path {us(path)}",
            (log_info - log_off) / path,
        )
    )


def _measure_big_order(report: Report, timed: Timer) -> None:
    big = large_order_body(RECORD_LIMIT - 1024, "big-cpu")
    products = len(json.loads(big)["detail"]["properties"]["products"])
    big_path = timed(_relay_path(big))
    big_reference = timed(_bare(big))
    report.add(
        Row(
            f"CPU/record: 256 KB order ({products} products)",
            ms(big_path),
            f"json loads+dumps {ms(big_reference)}",
            big_path / big_reference,
        )
    )


def _warm_child_runs(
    stack: Stack, workdir: Path, *, quick: bool
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(batches per run, relay runs at INFO, relay runs at WARNING, bare urllib3 runs), interleaved."""
    from bench.workloads import seed_event
    from mapping import map_order

    environ = child_environ(stack.relay_environ(10))
    event_file = workdir / "ten-records.json"
    event_file.write_text(json.dumps(seed_batch(10)))
    body_file = workdir / "refersion-body.json"
    body_file.write_bytes(map_order(seed_event()).to_json_bytes())
    count = 8 if quick else 40
    quiet = {**environ, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    keys = {"BENCH_PUBLIC_KEY": PUBLIC_KEY, "BENCH_SECRET_KEY": SECRET_KEY}
    relay_runs, quiet_runs, post_runs = [], [], []
    for _ in range(1 if quick else 3):  # interleaved
        relay_runs.append(run_child("warm", workdir, environ, str(event_file), str(count))[1])
        quiet_runs.append(run_child("warm", workdir, quiet, str(event_file), str(count))[1])
        post_runs.append(
            run_child("posts", workdir, {**environ, **keys}, stack.sandbox.url, str(body_file), str(count))[1]
        )
    stack.expect_accepted(3 * len(relay_runs) * 10 * (count + 1))
    return count, relay_runs, quiet_runs, post_runs


def measure_relay_cpu(stack: Stack, report: Report, workdir: Path, *, latency: float, quick: bool) -> None:
    """CPU of the relay alone per warm 10-record batch (a child process; the sandbox stays in this one),
    against the same 10 POSTs made with bare urllib3 and a thread pool of 10."""
    stack.sandbox.set_latency(latency)
    count, relay_runs, quiet_runs, post_runs = _warm_child_runs(stack, workdir, quick=quick)
    cpu, bare = median_ms_as_seconds(relay_runs, "cpu_ms"), median_ms_as_seconds(post_runs, "cpu_ms")
    report.add(
        Row(
            "relay CPU per 10-record batch (own process)",
            ms(cpu),
            f"bare urllib3 posts {ms(bare)}",
            cpu / bare,
        )
    )
    quiet_cpu = median_ms_as_seconds(quiet_runs, "cpu_ms")
    report.add(
        Row(
            "relay CPU per 10-record batch, logs off",
            ms(quiet_cpu),
            f"logs at INFO {ms(cpu)}",
            quiet_cpu / cpu,
        )
    )

    def wall(runs: list[dict[str, Any]]) -> str:
        return ms(median_ms_as_seconds(runs, "wall_ms"))

    share = FUNCTION_MEMORY_MB / FULL_VCPU_MB
    section = "Batches"
    report.note(
        section,
        f"CPU per warm 10-record batch, user+system of a child process (moto and the sandbox stay in "
        f"this one), median of {len(relay_runs)} x {count} batches: relay {ms(cpu)} "
        f"(user {ms(median_ms_as_seconds(relay_runs, 'user_ms'))}, "
        f"system {ms(median_ms_as_seconds(relay_runs, 'system_ms'))}, "
        f"wall {wall(relay_runs)}); bare urllib3, 10 threads, same bodies: {ms(bare)} "
        f"(wall {wall(post_runs)}); the relay's own share: {ms(cpu - bare)} "
        f"= {(cpu - bare) / 10 * 1e6:,.0f} us per record",
    )
    report.note(
        section,
        f"logging: POWERTOOLS_LOG_LEVEL=WARNING (no outcome lines; EMF metrics still written) saves "
        f"{ms(cpu - quiet_cpu)} of CPU per batch ({(cpu - quiet_cpu) / cpu:.0%}); warm wall "
        f"{wall(quiet_runs)} without the lines, {wall(relay_runs)} with",
    )
    report.note(
        section,
        f"at {FUNCTION_MEMORY_MB} MB Lambda gives {share:.2f} vCPU (1 vCPU at {FULL_VCPU_MB} MB): "
        f"{ms(cpu)} of CPU here may take up to {ms(cpu / share)} there where it does not overlap "
        f"the wait (x86 core here; Graviton differs) -- see docs/PERFORMANCE.md",
    )
