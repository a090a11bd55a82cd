"""Figure 3, cold start: the relay in a fresh interpreter (one record) against a floor that only imports
boto3/urllib3/pydantic and builds its clients, interleaved; with an import-time profile (not --quick)."""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import TARGET_COLD_RATIO, Stack, child_environ, median_ms_as_seconds, run_child
from bench.report import Report, Row, ms
from bench.workloads import seed_batch

Phases = dict[str, list[dict[str, Any]]]

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
            ms(relay),
            f"floor {ms(floor)}",
            ratio,
            f"<= {TARGET_COLD_RATIO:g}x",
            ratio <= TARGET_COLD_RATIO,
        )
    )
    section = f"Cold start (medians of {runs} interleaved pairs; sandbox latency 0 for this figure)"
    _note_phases(report, section, walls, phases)
    if quick:
        return
    _note_teardown(stack, report, section, workdir=workdir, environ=environ, event_file=event_file)
    _note_import_profile(stack, report, workdir, environ, event_file)


def _note_phases(report: Report, section: str, walls: dict[str, list[float]], phases: Phases) -> None:
    """Where the floor's and the relay's cold starts go, and how far the relay is from the target."""
    floor, relay = statistics.median(walls["floor"]), statistics.median(walls["relay"])

    def median_of(mode: str, key: str) -> float:
        return median_ms_as_seconds(phases[mode], key)

    f_import, f_clients = median_of("floor", "import_ms"), median_of("floor", "clients_ms")
    report.note(
        section,
        f"floor: {ms(floor)} = interpreter start {ms(floor - median_of('floor', 'script_ms'))}"
        f" + import boto3/urllib3/pydantic {ms(f_import)}"
        f" + SQS and Secrets Manager clients {ms(f_clients)}",
    )
    r_import, r_build = median_of("relay", "import_ms"), median_of("relay", "build_ms")
    r_first = median_of("relay", "decode_ms") + median_of("relay", "handle_ms")
    report.note(
        section,
        f"relay: {ms(relay)} = interpreter start {ms(relay - median_of('relay', 'script_ms'))}"
        f" + import handler.app {ms(r_import)} + build relay {ms(r_build)}"
        f" + first invocation {ms(r_first)} (secret fetch, connect, post, log, EMF)",
    )
    report.note(
        section,
        f"relay - floor = {ms(relay - floor)}: imports +{ms(r_import - f_import)}, "
        f"build {ms(r_build - f_clients)} vs the floor's clients, first invocation +{ms(r_first)}",
    )
    best_floor, best_relay = min(walls["floor"]), min(walls["relay"])
    report.note(
        section,
        f"best of {len(walls['relay'])} (least disturbed by other load): relay {ms(best_relay)}, "
        f"floor {ms(best_floor)}, ratio {best_relay / best_floor:.2f}x; spread of the relay's runs "
        f"{ms(min(walls['relay']))} .. {ms(max(walls['relay']))}",
    )
    budget = TARGET_COLD_RATIO * floor
    report.note(
        section,
        f"the target allows {ms(budget)}: {ms(max(0.0, relay - budget))} to cut"
        if relay > budget
        else f"the target allows {ms(budget)}: {ms(budget - relay)} to spare",
    )
    report.note(
        section,
        f"RSS after one record: {statistics.median(r['peak_rss_mb'] for r in phases['relay']):.1f} MB peak",
    )


def _note_teardown(
    stack: Stack, report: Report, section: str, *, workdir: Path, environ: dict[str, str], event_file: Path
) -> None:
    """For the record: the same processes ending normally (a Lambda environment never does this)."""
    teardown_runs = 3
    with_exit = {**environ, "BENCH_CHILD_TEARDOWN": "1"}
    exit_walls, _ = cold_start_pairs(stack, workdir, with_exit, event_file, teardown_runs)
    exit_floor, exit_relay = statistics.median(exit_walls["floor"]), statistics.median(exit_walls["relay"])
    report.note(
        section,
        f"ending with the interpreter's teardown instead of os._exit ({teardown_runs} pairs): relay "
        f"{ms(exit_relay)}, floor {ms(exit_floor)}, ratio {exit_relay / exit_floor:.2f}x "
        "(module finalisation; not part of a Lambda cold start)",
    )


def _note_import_profile(
    stack: Stack, report: Report, workdir: Path, environ: dict[str, str], event_file: Path
) -> None:
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
