"""Figure 4, peak RSS: the relay in a fresh interpreter on the largest batches Lambda can hand it."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.harness import SMALLEST_FUNCTION_MB, Stack, child_environ, run_child
from bench.report import Report, Row, ms
from bench.workloads import LAMBDA_PAYLOAD_LIMIT, RECORD_LIMIT, large_batch


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
            f"invocation {ms(handle)}",
        )
