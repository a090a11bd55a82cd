"""Lambda's cost per million orders at concurrency 10 and 1, from the warm batch wall times measured."""

from __future__ import annotations

import math

from bench.batches import BatchFigures
from bench.harness import FUNCTION_MEMORY_MB
from bench.report import Report

# Lambda arm64 prices (us-east-1).
PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_MILLION_REQUESTS = 0.20
ORDERS = 1_000_000
BATCH_SIZE = 10  # template.yaml: the SQS event source's BatchSize


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
