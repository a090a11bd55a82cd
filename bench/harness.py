"""What every figure uses: the local stack (moto + sandbox), one invocation, a child interpreter, timers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT
from local.aws import LocalAws, RelayResources
from local.lambda_shapes import FakeLambdaContext
from local.sandbox import RefersionSandbox

CHILD = Path(__file__).with_name("child.py")
PUBLIC_KEY = "pub_bench_7d1e"
SECRET_KEY = "sec_bench_SECRET_93f0"

# The function's memory size in template.yaml, and the CPU Lambda gives it.
FUNCTION_MEMORY_MB = 512
SMALLEST_FUNCTION_MB = 128
FULL_VCPU_MB = 1769  # Lambda allocates CPU in proportion to memory: one vCPU at 1,769 MB

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


def median_ms_as_seconds(results: Sequence[dict[str, Any]], key: str) -> float:
    """The median of one millisecond figure the child processes reported, in seconds."""
    return float(statistics.median(result[key] for result in results)) / 1000
