"""Performance benchmark of the relay: batch wall time, CPU per record, cold start and peak memory.

    python -m bench.bench_relay [--latency 0.05] [--runs 5] [--cold-runs 7] [--quick]

Everything runs on this machine: a moto server and the Refersion sandbox (with an injected latency)
in this process, the relay either in this process (batches, CPU) or in fresh interpreters (cold start,
peak RSS). Each figure is printed next to a reference measured in the same run, as a ratio, with the
target it is held to. Missing a target is reported, not raised: the exit status is non-zero only when
the benchmark itself fails. docs/PERFORMANCE.md explains the figures.

One module per figure: ``batches`` (1. batch wall time), ``cpu`` (2. CPU per record), ``cold_start``
(3.), ``rss`` (4. peak RSS), ``cost``; ``harness`` is what they share, ``report`` the printout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.batches import BatchFigures, measure_batches
from bench.cold_start import measure_cold_start
from bench.cost import cost_notes
from bench.cpu import measure_cpu, measure_relay_cpu
from bench.harness import PUBLIC_KEY, SECRET_KEY, Stack
from bench.report import Report, load_average, machine_line
from bench.rss import measure_rss
from local.aws import LocalAws, create_relay_resources
from local.sandbox import RefersionSandbox


def _arguments(argv: Sequence[str] | None) -> tuple[argparse.Namespace, int, int]:
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
    return args, runs, cold_runs


def _measure_on_a_local_stack(
    report: Report, *, latency: float, runs: int, cold_runs: int, quick: bool
) -> BatchFigures:
    """Figures 1, 3 and 4 and the relay's own CPU: a moto server and the sandbox in this process."""
    with (
        LocalAws() as aws,
        RefersionSandbox(PUBLIC_KEY, SECRET_KEY) as sandbox,
        tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp,
    ):
        stack = Stack(aws, create_relay_resources(aws, public_key=PUBLIC_KEY, secret_key=SECRET_KEY), sandbox)
        batches = measure_batches(stack, report, latency=latency, runs=runs, quick=quick)
        measure_relay_cpu(stack, report, Path(tmp), latency=latency, quick=quick)
        measure_cold_start(stack, report, Path(tmp), runs=cold_runs, quick=quick)
        measure_rss(stack, report, Path(tmp), latency=latency, quick=quick)
        from handler.wiring import forget_relay

        forget_relay()
    return batches


def main(argv: Sequence[str] | None = None) -> int:
    args, runs, cold_runs = _arguments(argv)
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
        batches = _measure_on_a_local_stack(
            report, latency=args.latency, runs=runs, cold_runs=cold_runs, quick=args.quick
        )
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
