"""Performance benchmark of the relay: batch wall time, CPU per record, cold start and peak memory.

    python -m bench.bench_relay [--latency 0.05] [--runs 5] [--cold-runs 7] [--quick]

Everything runs on this machine: a moto server and the Refersion sandbox (with an injected latency)
in this process, the relay either in this process (batches, CPU) or in fresh interpreters (cold start,
peak RSS). Each figure is printed next to a reference measured in the same run, as a ratio, with the
target it is held to. Missing a target is reported, not raised: the exit status is non-zero only when
the benchmark itself fails. docs/PERFORMANCE.md explains the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.workloads import (
    LAMBDA_PAYLOAD_LIMIT,
    RECORD_LIMIT,
    large_batch,
    large_order_body,
    seed_batch,
    seed_body,
)
from local.aws import LocalAws, RelayResources, create_relay_resources
from local.lambda_shapes import FakeLambdaContext
from local.sandbox import RefersionSandbox

CHILD = Path(__file__).with_name("child.py")
PUBLIC_KEY = "pub_bench_7d1e"
SECRET_KEY = "sec_bench_SECRET_93f0"

# Lambda arm64 prices (us-east-1) and the function's memory size in template.yaml.
PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_MILLION_REQUESTS = 0.20
FUNCTION_MEMORY_MB = 512
SMALLEST_FUNCTION_MB = 128
FULL_VCPU_MB = 1769  # Lambda allocates CPU in proportion to memory: one vCPU at 1,769 MB
ORDERS = 1_000_000
BATCH_SIZE = 10  # template.yaml: the SQS event source's BatchSize

TARGET_BATCH_X_LATENCY = 1.5
TARGET_SPEEDUP = 6.0
TARGET_CPU_RATIO = 10.0
TARGET_COLD_RATIO = 1.3


class BenchError(Exception):
    """The benchmark could not measure what it meant to (not a missed target)."""


class _NullStream(io.TextIOBase):
    """A text sink: the relay still formats every log line and EMF document, nobody reads them."""

    def write(self, text: str) -> int:
        return len(text)


# --------------------------------------------------------------------------- report


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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


# --------------------------------------------------------------------------- timing helpers


def per_call_seconds(fn: Callable[[], object], *, repeats: int, min_time: float) -> float:
    """Median over `repeats` of the mean time of one call, each repeat lasting at least min_time."""
    number = 1
    while True:
        started = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - started >= min_time:
            break
        number *= 2
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - started) / number)
    return statistics.median(samples)


@contextlib.contextmanager
def quiet_relay() -> Iterator[None]:
    """Send the relay's log lines and EMF documents to a sink (they are still produced)."""
    from handler.observability import logger

    handler = logger.registered_handler
    previous = handler.setStream(_NullStream())  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(_NullStream()):
            yield
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- 2. CPU per record


def measure_cpu(report: Report, *, quick: bool) -> float:
    """Single thread, no network: the per-record path against a bare json.loads + json.dumps.

    Returns the path's CPU per record, in seconds.
    """
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsRecordModel

    from handler.observability import logger, metrics, report_outcome
    from handler.outcomes import Outcome, RecordResult
    from handler.triggers import InboundRecord, datafly_event_of
    from local.lambda_shapes import sqs_record
    from mapping import DataflyEvent, EventKind, RefersionOrder, classify_event, consent_denied, map_order
    from mapping.order import _body_from

    repeats, min_time = (3, 0.02) if quick else (7, 0.1)

    def timed(fn: Callable[[], object]) -> float:
        return per_call_seconds(fn, repeats=repeats, min_time=min_time)

    def relay_path(body: str) -> Callable[[], bytes]:
        def run() -> bytes:
            event = datafly_event_of(InboundRecord(record_id="bench", raw_body=body))  # loads + envelope
            if classify_event(event) is not EventKind.ORDER_COMPLETED:
                raise BenchError("the benchmark's order is not classified as an Order Completed event")
            consent_denied(event, "marketing")
            return map_order(event).to_json_bytes()

        return run

    def bare(body: str) -> Callable[[], str]:
        return lambda: json.dumps(json.loads(body))

    body = seed_body()
    path = timed(relay_path(body))
    reference = timed(bare(body))
    report.add(
        Row(
            "CPU/record: parse+validate+map+serialize",
            _us(path),
            f"json loads+dumps {_us(reference)}",
            path / reference,
            f"<= {TARGET_CPU_RATIO:g}x",
            path / reference <= TARGET_CPU_RATIO,
        )
    )

    # Where the path's time goes, stage by stage (each stage on the previous stage's output).
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
        report.note(section, f"{name:48s} {_us(timed(fn)):>10s}")
    report.note(section, f"{'= the path above, measured as one call':48s} {_us(path):>10s}")

    # What else the relay spends per record around that path (not in the target's figure).
    record = sqs_record(body)
    extra = {
        "SqsRecordModel (Powertools parser model)": lambda: SqsRecordModel.model_validate(record),
        "to_log_dict (masked body for the outcome line)": order.to_log_dict,
    }
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
    section = "Around the path, per record (not in the figure above)"
    around = 0.0
    for name, fn in extra.items():
        seconds = timed(fn)
        around += seconds
        report.note(section, f"{name:58s} {_us(seconds):>10s}")
    report.note(section, f"{'outcome log line (INFO, JSON to a sink) + 2 metrics':58s} {_us(log_info):>10s}")
    report.note(
        section, f"{'the same with POWERTOOLS_LOG_LEVEL=WARNING (metrics only)':58s} {_us(log_off):>10s}"
    )
    whole = path + around + log_info
    report.note(
        section,
        f"whole CPU per delivered record, HTTP excluded: {_us(whole)} "
        f"({(log_info - log_off) / whole:.0%} of it is the log line)",
    )
    report.add(
        Row(
            "CPU/record: outcome log line (INFO)",
            _us(log_info - log_off),
            f"path {_us(path)}",
            (log_info - log_off) / path,
        )
    )

    big = large_order_body(RECORD_LIMIT - 1024, "big-cpu")
    products = len(json.loads(big)["detail"]["properties"]["products"])
    big_path = timed(relay_path(big))
    big_reference = timed(bare(big))
    report.add(
        Row(
            f"CPU/record: 256 KB order ({products} products)",
            _ms(big_path),
            f"json loads+dumps {_ms(big_reference)}",
            big_path / big_reference,
        )
    )
    return path


# --------------------------------------------------------------------------- the local stack


@dataclass
class Stack:
    aws: LocalAws
    resources: RelayResources
    sandbox: RefersionSandbox

    def relay_environ(self, concurrency: int, *, idempotency: bool = False) -> dict[str, str]:
        """The function's environment as template.yaml sets it, pointed at the local stack."""
        return {
            **self.aws.environ(),
            # Never read the user's AWS files: the dummy credentials above are all the SDK needs.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "REFERSION_SECRET_ID": self.resources.secret_id,
            "REFERSION_ENDPOINT": self.sandbox.url,
            "REFERSION_TIMEOUT_SECONDS": "10",
            "REFERSION_MAX_CONCURRENCY": str(concurrency),
            "DEAD_LETTER_QUEUE_URL": self.resources.dlq_url,
            "SOURCE_QUEUE_URL": self.resources.queue_url,
            "IDEMPOTENCY_TABLE_NAME": self.resources.table_name if idempotency else "",
            "CONSENT_CATEGORY": "marketing",
            "SECRET_CACHE_SECONDS": "300",
            "POWERTOOLS_SERVICE_NAME": "refersion-relay",
            "POWERTOOLS_METRICS_NAMESPACE": "RefersionRelayBench",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }

    def configure(self, concurrency: int, *, idempotency: bool = False) -> None:
        """Redeploy the in-process relay with this environment (it is rebuilt on the next call)."""
        from handler.wiring import forget_relay

        os.environ.update(self.relay_environ(concurrency, idempotency=idempotency))
        forget_relay()

    def expect_accepted(self, count: int) -> None:
        accepted = len(self.sandbox.accepted())
        self.sandbox.reset()
        if accepted != count:
            raise BenchError(f"the sandbox accepted {accepted} orders, expected {count}")


def invoke(event: dict[str, Any]) -> float:
    """One invocation of the real entry point; its wall time in seconds."""
    from handler.app import lambda_handler

    started = time.perf_counter()
    response = lambda_handler(event, FakeLambdaContext())
    elapsed = time.perf_counter() - started
    if response.get("batchItemFailures"):
        raise BenchError(f"records reported for retry: {response['batchItemFailures'][:3]}")
    return elapsed


# --------------------------------------------------------------------------- 1. batch wall time


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


@dataclass
class BatchFigures:
    ten: dict[int, float]  # concurrency -> median wall time of a warm 10-record batch
    thousand: dict[int, float]  # concurrency -> wall time of 100 invocations of 10


def measure_batches(stack: Stack, report: Report, *, latency: float, runs: int, quick: bool) -> BatchFigures:
    stack.sandbox.set_latency(latency)
    samples: dict[int, list[float]] = {10: [], 1: []}
    first: dict[int, list[float]] = {10: [], 1: []}
    per_run = 2
    with quiet_relay():
        # Interleaved, so that drift of the machine hits both configurations alike.
        for run in range(runs):
            for concurrency in (10, 1) if run % 2 == 0 else (1, 10):
                stack.configure(concurrency)
                first[concurrency].append(invoke(seed_batch(10)))  # builds the relay, opens connections
                events = [seed_batch(10) for _ in range(per_run)]
                samples[concurrency] += [invoke(event) for event in events]
        stack.expect_accepted(runs * 2 * (per_run + 1) * 10)
        ten = {c: statistics.median(s) for c, s in samples.items()}

        thousand: dict[int, float] = {}
        thousand_runs = 1 if quick else min(runs, 3)
        stack.configure(10)
        invoke(seed_batch(10))
        opened = stack.sandbox.connections_opened()
        walls = []
        for _ in range(thousand_runs):
            events = [seed_batch(10) for _ in range(100)]
            started = time.perf_counter()
            for event in events:
                invoke(event)
            walls.append(time.perf_counter() - started)
        thousand[10] = statistics.median(walls)
        reopened = stack.sandbox.connections_opened() - opened
        stack.expect_accepted(10 + thousand_runs * 1000)

        if quick:
            thousand[1] = 100 * ten[1]  # sequential: 100 times a 10-record batch (estimated)
        else:
            stack.configure(1)
            invoke(seed_batch(10))
            events = [seed_batch(10) for _ in range(100)]
            started = time.perf_counter()
            for event in events:
                invoke(event)
            thousand[1] = time.perf_counter() - started
            stack.expect_accepted(1010)

        single_call = None
        if not quick:
            stack.configure(10)
            invoke(seed_batch(10))
            single_call = invoke(seed_batch(1000))
            stack.expect_accepted(1010)

        # The fixed cost under the latency: relay and sandbox CPU (one process, one GIL), thread hand-offs.
        stack.sandbox.set_latency(0.0)
        overhead: dict[int, float] = {}
        for concurrency in (10, 1):
            stack.configure(concurrency)
            invoke(seed_batch(10))
            overhead[concurrency] = statistics.median([invoke(seed_batch(10)) for _ in range(5)])
        stack.expect_accepted(2 * 60)
        stack.sandbox.set_latency(latency)

        volume = log_volume(seed_batch(10))
        stack.expect_accepted(10)

        stack.configure(10, idempotency=True)
        invoke(seed_batch(10))
        idempotent_runs = 2 if quick else 2 * runs
        idempotent = statistics.median([invoke(seed_batch(10)) for _ in range(idempotent_runs)])
        stack.expect_accepted(10 * (1 + idempotent_runs))
        stack.configure(10)

    n = len(samples[10])
    report.add(
        Row(
            "10-record batch, concurrency 10",
            _ms(ten[10]),
            f"latency {_ms(latency)}",
            ten[10] / latency if latency else None,
            f"<= {TARGET_BATCH_X_LATENCY:g}x" if latency else "-",
            ten[10] <= TARGET_BATCH_X_LATENCY * latency if latency else None,
        )
    )
    speedup = ten[1] / ten[10]
    report.add(
        Row(
            "10-record batch, concurrency 1 vs 10",
            _ms(ten[1]),
            f"c=10 {_ms(ten[10])}",
            speedup,
            f">= {TARGET_SPEEDUP:g}x",
            speedup >= TARGET_SPEEDUP,
        )
    )
    report.add(
        Row(
            "1,000 records (100 x 10), concurrency 10",
            _ms(thousand[10]),
            f"100 x latency {_ms(100 * latency)}",
            thousand[10] / (100 * latency) if latency else None,
        )
    )
    report.add(
        Row(
            "1,000 records (100 x 10), concurrency 1" + (" (est.)" if quick else ""),
            _ms(thousand[1]),
            f"c=10 {_ms(thousand[10])}",
            thousand[1] / thousand[10],
        )
    )
    report.add(
        Row(
            "10-record batch, c=10, idempotency (moto)",
            _ms(idempotent),
            f"without {_ms(ten[10])}",
            idempotent / ten[10],
        )
    )

    section = "Batches"
    report.note(
        section,
        f"10-record batch: median of {n} warm invocations per concurrency ({runs} runs x {per_run}, "
        f"c=10 and c=1 interleaved); the relay is rebuilt at each switch",
    )
    report.note(
        section,
        f"first invocation after a rebuild (secret fetch, new connections): c=10 "
        f"{_ms(statistics.median(first[10]))}, c=1 {_ms(statistics.median(first[1]))}",
    )
    report.note(
        section,
        f"1,000 records: 100 sequential invocations of 10 on one warm relay (BatchSize 10, as deployed); "
        f"c=10 median of {thousand_runs} run(s), c=1 "
        + ("estimated as 100 x the 10-record c=1 median (--quick)" if quick else "1 run"),
    )
    report.note(
        section, f"new connections opened during the c=10 1,000-record run(s): {reopened} (keep-alive)"
    )
    if single_call is not None:
        report.note(
            section,
            f"one invocation of 1,000 records, c=10: {_ms(single_call)} "
            f"({single_call / thousand[10]:.2f}x the 100 x 10 figure)",
        )
    report.note(
        section,
        f"10-record batch at latency 0 (relay + sandbox CPU in this process): c=10 {_ms(overhead[10])}, "
        f"c=1 {_ms(overhead[1])}",
    )
    lines, line_bytes, emf_bytes = volume
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
    return BatchFigures(ten, thousand)


def measure_relay_cpu(stack: Stack, report: Report, workdir: Path, *, latency: float, quick: bool) -> None:
    """CPU of the relay alone per warm 10-record batch (a child process; the sandbox stays in this one),
    against the same 10 POSTs made with bare urllib3 and a thread pool of 10."""
    from bench.workloads import seed_event
    from mapping import map_order

    stack.sandbox.set_latency(latency)
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

    def median_of(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(run[key] for run in runs) / 1000

    cpu, bare = median_of(relay_runs, "cpu_ms"), median_of(post_runs, "cpu_ms")
    report.add(
        Row(
            "relay CPU per 10-record batch (own process)",
            _ms(cpu),
            f"bare urllib3 posts {_ms(bare)}",
            cpu / bare,
        )
    )
    quiet_cpu = median_of(quiet_runs, "cpu_ms")
    report.add(
        Row(
            "relay CPU per 10-record batch, logs off",
            _ms(quiet_cpu),
            f"logs at INFO {_ms(cpu)}",
            quiet_cpu / cpu,
        )
    )
    share = FUNCTION_MEMORY_MB / FULL_VCPU_MB
    section = "Batches"
    report.note(
        section,
        f"CPU per warm 10-record batch, user+system of a child process (moto and the sandbox stay in "
        f"this one), median of {len(relay_runs)} x {count} batches: relay {_ms(cpu)} "
        f"(user {_ms(median_of(relay_runs, 'user_ms'))}, system {_ms(median_of(relay_runs, 'system_ms'))}, "
        f"wall {_ms(median_of(relay_runs, 'wall_ms'))}); bare urllib3, 10 threads, same bodies: {_ms(bare)} "
        f"(wall {_ms(median_of(post_runs, 'wall_ms'))}); the relay's own share: {_ms(cpu - bare)} "
        f"= {(cpu - bare) / 10 * 1e6:,.0f} us per record",
    )
    report.note(
        section,
        f"logging: POWERTOOLS_LOG_LEVEL=WARNING (no outcome lines; EMF metrics still written) saves "
        f"{_ms(cpu - quiet_cpu)} of CPU per batch ({(cpu - quiet_cpu) / cpu:.0%}); warm wall "
        f"{_ms(median_of(quiet_runs, 'wall_ms'))} without the lines, "
        f"{_ms(median_of(relay_runs, 'wall_ms'))} with",
    )
    report.note(
        section,
        f"at {FUNCTION_MEMORY_MB} MB Lambda gives {share:.2f} vCPU (1 vCPU at {FULL_VCPU_MB} MB): "
        f"{_ms(cpu)} of CPU here may take up to {_ms(cpu / share)} there where it does not overlap "
        f"the wait (x86 core here; Graviton differs) -- see docs/PERFORMANCE.md",
    )


# --------------------------------------------------------------------------- 3. cold start


def child_environ(relay_environ: dict[str, str]) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    base = {name: os.environ[name] for name in keep if name in os.environ}
    return {**base, **relay_environ, "PYTHONPATH": str(ROOT / "src")}


def run_child(
    mode: str, workdir: Path, environ: dict[str, str], *args: str, flags: Sequence[str] = ()
) -> tuple[float, dict[str, Any], str]:
    """Wall time of a fresh interpreter running child.py, its own report, and its stderr."""
    result_file = workdir / f"{mode}-result.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, *flags, str(CHILD), mode, str(result_file), *args]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env=environ,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0 or not result_file.exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise BenchError(f"child {mode} failed with status {done.returncode}:\n{tail}")
    return wall, json.loads(result_file.read_text()), done.stderr


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
_GROUPS = (
    ("relay code (handler, mapping)", ("handler", "mapping")),
    ("aws_lambda_powertools", ("aws_lambda_powertools",)),
    (
        "pydantic",
        ("pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection"),
    ),
    (
        "boto3 + botocore (+ urllib3, s3transfer, ...)",
        ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"),
    ),
)


def import_profile(stderr: str) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Self time (ms) of `-X importtime` grouped by owner, by Powertools subpackage, by relay module."""
    groups: dict[str, float] = defaultdict(float)
    powertools: dict[str, float] = defaultdict(float)
    relay: dict[str, float] = defaultdict(float)
    for match in _IMPORT_LINE.finditer(stderr):
        self_ms, name = int(match[1]) / 1000, match[4]
        top = name.split(".")[0]
        owner = next((label for label, tops in _GROUPS if top in tops), "standard library")
        groups[owner] += self_ms
        if top == "aws_lambda_powertools":
            parts = name.split(".")
            key = ".".join(parts[1:3] if parts[1:2] == ["utilities"] else parts[1:2]) or "(package)"
            powertools[key] += self_ms
        elif top in ("handler", "mapping"):
            relay[name] += self_ms
    return groups, powertools, relay


def cold_start_pairs(
    stack: Stack, workdir: Path, environ: dict[str, str], event_file: Path, runs: int
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, Any]]]]:
    """Floor and relay in fresh interpreters, interleaved (order alternating) to cancel drift."""
    walls: dict[str, list[float]] = {"floor": [], "relay": []}
    phases: dict[str, list[dict[str, Any]]] = {"floor": [], "relay": []}
    for run in range(runs):
        for mode in ("floor", "relay") if run % 2 == 0 else ("relay", "floor"):
            args = (str(event_file),) if mode == "relay" else ()
            wall, result, _ = run_child(mode, workdir, environ, *args)
            walls[mode].append(wall)
            phases[mode].append(result)
    stack.expect_accepted(runs)
    return walls, phases


def measure_cold_start(stack: Stack, report: Report, workdir: Path, *, runs: int, quick: bool) -> None:
    stack.sandbox.set_latency(0.0)
    environ = child_environ(stack.relay_environ(10))
    event_file = workdir / "one-record.json"
    event_file.write_text(json.dumps(seed_batch(1)))
    # Discarded: writes any missing bytecode cache, warms the file cache and moto's first answers.
    if not quick:
        run_child("floor", workdir, environ)
    run_child("relay", workdir, environ, str(event_file))
    stack.expect_accepted(1)
    walls, phases = cold_start_pairs(stack, workdir, environ, event_file, runs)
    floor, relay = statistics.median(walls["floor"]), statistics.median(walls["relay"])
    ratio = relay / floor
    report.add(
        Row(
            "cold start: new process, 1 record",
            _ms(relay),
            f"floor {_ms(floor)}",
            ratio,
            f"<= {TARGET_COLD_RATIO:g}x",
            ratio <= TARGET_COLD_RATIO,
        )
    )

    def median_of(mode: str, key: str) -> float:
        return statistics.median(result[key] for result in phases[mode]) / 1000

    section = f"Cold start (medians of {runs} interleaved pairs; sandbox latency 0 for this figure)"
    f_import, f_clients = median_of("floor", "import_ms"), median_of("floor", "clients_ms")
    report.note(
        section,
        f"floor: {_ms(floor)} = interpreter start {_ms(floor - median_of('floor', 'script_ms'))}"
        f" + import boto3/urllib3/pydantic {_ms(f_import)}"
        f" + SQS and Secrets Manager clients {_ms(f_clients)}",
    )
    r_import, r_build = median_of("relay", "import_ms"), median_of("relay", "build_ms")
    r_first = median_of("relay", "decode_ms") + median_of("relay", "handle_ms")
    report.note(
        section,
        f"relay: {_ms(relay)} = interpreter start {_ms(relay - median_of('relay', 'script_ms'))}"
        f" + import handler.app {_ms(r_import)} + build relay {_ms(r_build)}"
        f" + first invocation {_ms(r_first)} (secret fetch, connect, post, log, EMF)",
    )
    report.note(
        section,
        f"relay - floor = {_ms(relay - floor)}: imports +{_ms(r_import - f_import)}, "
        f"build {_ms(r_build - f_clients)} vs the floor's clients, first invocation +{_ms(r_first)}",
    )
    best_floor, best_relay = min(walls["floor"]), min(walls["relay"])
    report.note(
        section,
        f"best of {runs} (least disturbed by other load): relay {_ms(best_relay)}, floor {_ms(best_floor)}, "
        f"ratio {best_relay / best_floor:.2f}x; spread of the relay's runs "
        f"{_ms(min(walls['relay']))} .. {_ms(max(walls['relay']))}",
    )
    budget = TARGET_COLD_RATIO * floor
    report.note(
        section,
        f"the target allows {_ms(budget)}: {_ms(max(0.0, relay - budget))} to cut"
        if relay > budget
        else f"the target allows {_ms(budget)}: {_ms(budget - relay)} to spare",
    )
    report.note(
        section,
        f"RSS after one record: {statistics.median(r['peak_rss_mb'] for r in phases['relay']):.1f} MB peak",
    )
    if quick:
        return
    # For the record: the same processes ending normally (a Lambda environment never does this).
    teardown_runs = 3
    with_exit = {**environ, "BENCH_CHILD_TEARDOWN": "1"}
    exit_walls, _ = cold_start_pairs(stack, workdir, with_exit, event_file, teardown_runs)
    exit_floor, exit_relay = statistics.median(exit_walls["floor"]), statistics.median(exit_walls["relay"])
    report.note(
        section,
        f"ending with the interpreter's teardown instead of os._exit ({teardown_runs} pairs): relay "
        f"{_ms(exit_relay)}, floor {_ms(exit_floor)}, ratio {exit_relay / exit_floor:.2f}x "
        "(module finalisation; not part of a Lambda cold start)",
    )
    _, _, relay_profile = run_child("relay", workdir, environ, str(event_file), flags=("-X", "importtime"))
    _, _, floor_profile = run_child("floor", workdir, environ, flags=("-X", "importtime"))
    stack.expect_accepted(1)
    relay_groups, powertools, modules = import_profile(relay_profile)
    floor_groups, _, _ = import_profile(floor_profile)
    section = (
        "Import time by owner (-X importtime self time, ms; inflated by the instrumentation: read shares)"
    )
    report.note(section, f"{'':46s} {'relay':>8s} {'floor':>8s} {'extra':>8s}")
    labels = [label for label, _ in _GROUPS] + ["standard library"]
    for label in labels:
        here, there = relay_groups.get(label, 0.0), floor_groups.get(label, 0.0)
        report.note(section, f"{label:46s} {here:8.1f} {there:8.1f} {here - there:8.1f}")
    total_relay, total_floor = sum(relay_groups.values()), sum(floor_groups.values())
    report.note(
        section, f"{'total':46s} {total_relay:8.1f} {total_floor:8.1f} {total_relay - total_floor:8.1f}"
    )
    top = sorted(powertools.items(), key=lambda item: -item[1])[:6]
    report.note(section, "powertools by subpackage: " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    top = sorted(modules.items(), key=lambda item: -item[1])[:6]
    report.note(
        section, "relay modules (model building included): " + ", ".join(f"{k} {v:.1f}" for k, v in top)
    )


# --------------------------------------------------------------------------- 4. peak RSS


def measure_rss(stack: Stack, report: Report, workdir: Path, *, latency: float, quick: bool) -> None:
    stack.sandbox.set_latency(latency)
    environ = child_environ(stack.relay_environ(10))
    shapes = [
        ("6 MB", large_batch(RECORD_LIMIT - 1024, total_bytes=LAMBDA_PAYLOAD_LIMIT)),
    ]
    if not quick:
        shapes.append(("BatchSize 10", large_batch(RECORD_LIMIT - 1024, records=10)))
    section = "Peak RSS (fresh interpreter; logs at INFO to a pipe; sandbox latency as above)"
    for label, payload in shapes:
        event_file = workdir / "large-batch.json"
        event_file.write_bytes(payload)
        records = len(json.loads(payload)["Records"])
        results = []
        for _ in range(1 if quick else 2):
            wall, result, _ = run_child("relay", workdir, environ, str(event_file))
            stack.expect_accepted(records)
            results.append((wall, result))
        peak = max(result["peak_rss_mb"] for _, result in results)
        baseline = statistics.median(result["baseline_rss_mb"] for _, result in results)
        handle = statistics.median(result["handle_ms"] for _, result in results) / 1000
        report.add(
            Row(
                f"peak RSS, {label}: {records} x 256 KB ({len(payload) / 1e6:.1f} MB)",
                f"{peak:.1f} MB",
                f"after imports {baseline:.1f} MB",
                peak / baseline,
                f"<= {SMALLEST_FUNCTION_MB} MB",
                peak <= SMALLEST_FUNCTION_MB,
            )
        )
        report.note(
            section,
            f"{label}: {records} records of {RECORD_LIMIT // 1024 - 1} KB, "
            f"event JSON {len(payload):,} bytes; "
            f"peak {peak:.1f} MB (max of {len(results)}), +{peak - baseline:.1f} MB over the baseline; "
            f"invocation {_ms(handle)}",
        )


# --------------------------------------------------------------------------- cost


def cost_notes(report: Report, batches: BatchFigures) -> None:
    invocations = ORDERS // BATCH_SIZE
    requests = invocations * PRICE_PER_MILLION_REQUESTS / 1_000_000
    section = (
        f"Lambda cost per {ORDERS:,} orders (arm64, {FUNCTION_MEMORY_MB} MB, batches of {BATCH_SIZE}, "
        "warm batch wall time measured above; cold starts and idempotency not included)"
    )
    costs = {}
    for concurrency in (10, 1):
        billed_ms = math.ceil(batches.ten[concurrency] * 1000)
        gb_seconds = invocations * billed_ms / 1000 * FUNCTION_MEMORY_MB / 1024
        duration = gb_seconds * PRICE_PER_GB_SECOND
        costs[concurrency] = duration + requests
        report.note(
            section,
            f"concurrency {concurrency:>2}: {invocations:,} invocations x {billed_ms} ms"
            f" = {gb_seconds:,.0f} GB-s"
            f" -> ${duration:.4f} duration + ${requests:.4f} requests = ${duration + requests:.4f}",
        )
    report.note(section, f"concurrency 1 costs {costs[1] / costs[10]:.1f}x as much")


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_relay", description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="sandbox latency in seconds (0.05)")
    parser.add_argument("--runs", type=int, help="interleaved runs of the 10-record batches (5; --quick 2)")
    parser.add_argument("--cold-runs", type=int, help="interleaved floor/relay cold starts (7; --quick 4)")
    parser.add_argument("--quick", action="store_true", help="fewer runs and shapes: under 30 s")
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.quick else 5)
    cold_runs = args.cold_runs or (4 if args.quick else 7)
    if args.latency < 0 or runs < 1 or cold_runs < 1:
        parser.error("--latency must be >= 0, --runs and --cold-runs >= 1")

    began = time.perf_counter()
    print(f"machine: {machine_line()}; load average (1 min) {load_average()}", flush=True)
    print(
        f"command: python -m bench.bench_relay --latency {args.latency:g} --runs {runs} "
        f"--cold-runs {cold_runs}{' --quick' if args.quick else ''}",
        flush=True,
    )
    report = Report()
    saved_environ = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    try:
        measure_cpu(report, quick=args.quick)
        with (
            LocalAws() as aws,
            RefersionSandbox(PUBLIC_KEY, SECRET_KEY) as sandbox,
            tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp,
        ):
            stack = Stack(
                aws, create_relay_resources(aws, public_key=PUBLIC_KEY, secret_key=SECRET_KEY), sandbox
            )
            batches = measure_batches(stack, report, latency=args.latency, runs=runs, quick=args.quick)
            measure_relay_cpu(stack, report, Path(tmp), latency=args.latency, quick=args.quick)
            measure_cold_start(stack, report, Path(tmp), runs=cold_runs, quick=args.quick)
            measure_rss(stack, report, Path(tmp), latency=args.latency, quick=args.quick)
            from handler.wiring import forget_relay

            forget_relay()
        cost_notes(report, batches)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
    print()
    print(report.render())
    print()
    print(report.verdict())
    print(
        f"(benchmark took {time.perf_counter() - began:.0f} s; load average (1 min) at the end "
        f"{load_average()}: other work on the machine makes the cold-start figures noisy)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
