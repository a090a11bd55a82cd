"""What the benchmark runs in fresh interpreters: a cold start and its floor, large and warm batches.

Run by path, ``python bench/child.py MODE RESULT_FILE [ARGS...]``, with
``PYTHONPATH=src``, so that nothing but the standard library and what the mode imports is loaded:

- ``floor``: import boto3, urllib3 and pydantic (BaseModel: ``import pydantic`` alone is lazy and
  loads almost nothing) and make the relay's two boto3 clients (SQS and Secrets Manager, same
  endpoint and botocore Config). Any Python function on this stack pays this much.
- ``relay``: import ``handler.app``, build the relay, and handle the SQS event in EVENT_FILE, the
  way Lambda's runtime does (the payload arrives as bytes and is decoded with json.loads).
  It also reports the peak resident set size, and the baseline right after the imports.
- ``warm``: handle the event in EVENT_FILE once, then COUNT more times, reporting the CPU time
  (user and system, every thread of this process, nothing of the parent's moto and sandbox) and
  the wall time per warm invocation.
- ``posts URL BODY_FILE COUNT``: the transport alone, for reference: rounds of 10 concurrent POSTs
  of BODY_FILE through urllib3 and a thread pool set up as the relay's, without the relay.

Each mode writes its phase timings (and memory) as JSON to RESULT_FILE; the parent measures the
wall time of the whole process. The process ends with os._exit, as a frozen Lambda environment never
pays the interpreter's teardown, unless BENCH_CHILD_TEARDOWN=1. The relay's logs and EMF metrics go
to stdout, which the parent discards.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

_started = time.perf_counter()


class _Context:
    """The parts of Lambda's context object that Powertools and the relay read."""

    function_name = "refersion-relay"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:refersion-relay"

    def __init__(self, remaining_ms: float = 60_000) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def _memory_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process, in MB.

    From /proc/self/status (VmRSS, VmHWM), not getrusage: on Linux ru_maxrss survives fork and exec,
    so a child of a large parent would report the parent's high-water mark.
    """
    found: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) / 1024  # kB
    except OSError:
        pass
    if len(found) < 2:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak
    return found["VmRSS"], found["VmHWM"]


def _ms_since(mark: float) -> float:
    return (time.perf_counter() - mark) * 1000


def floor() -> dict[str, Any]:
    mark = time.perf_counter()
    import boto3
    import urllib3  # noqa: F401 - importing it is the point
    from botocore.config import Config
    from pydantic import BaseModel  # noqa: F401

    imported = time.perf_counter()
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    session = boto3.session.Session()
    session.client("sqs", config=config)
    session.client("secretsmanager", config=config)
    return {"import_ms": (imported - mark) * 1000, "clients_ms": _ms_since(imported)}


def relay(event_file: str) -> dict[str, Any]:
    mark = time.perf_counter()
    from handler.app import lambda_handler
    from handler.wiring import current_relay

    imported = time.perf_counter()
    baseline_mb, _ = _memory_mb()
    current_relay()  # what the first invocation would do first: settings, boto3 clients, pool
    built = time.perf_counter()
    event = json.loads(Path(event_file).read_bytes())
    decoded = time.perf_counter()
    response = lambda_handler(event, _Context())
    handled = time.perf_counter()
    failures = response.get("batchItemFailures")
    if failures:
        raise SystemExit(f"{len(failures)} of {len(event['Records'])} records were reported for retry")
    return {
        "import_ms": (imported - mark) * 1000,
        "build_ms": (built - imported) * 1000,
        "decode_ms": (decoded - built) * 1000,
        "handle_ms": (handled - decoded) * 1000,
        "records": len(event["Records"]),
        "baseline_rss_mb": baseline_mb,
        "peak_rss_mb": _memory_mb()[1],
    }


def _cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU time of every thread of this process (getrusage: microseconds, where
    os.times counts clock ticks of 10 ms)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _per_call(count: int, run: Callable[[], object]) -> dict[str, float]:
    user, system = _cpu_seconds()
    wall = time.perf_counter()
    for _ in range(count):
        run()
    wall_s = time.perf_counter() - wall
    user_s, system_s = (after - before for after, before in zip(_cpu_seconds(), (user, system), strict=True))
    return {
        "cpu_ms": (user_s + system_s) * 1000 / count,
        "user_ms": user_s * 1000 / count,
        "system_ms": system_s * 1000 / count,
        "wall_ms": wall_s * 1000 / count,
    }


def warm(event_file: str, count: int) -> dict[str, Any]:
    """CPU of the relay alone (moto and the sandbox live in the parent) per warm invocation."""
    from handler.app import lambda_handler

    payload = Path(event_file).read_bytes()
    lambda_handler(json.loads(payload), _Context())  # cold: builds the relay, fetches the secret

    def invoke() -> None:
        response = lambda_handler(json.loads(payload), _Context())
        if response.get("batchItemFailures"):
            raise SystemExit("records were reported for retry")

    return {**_per_call(count, invoke), "records": len(json.loads(payload)["Records"])}


def posts(url: str, body_file: str, count: int) -> dict[str, Any]:
    """The transport alone: the same number of POSTs per round as a batch has records, with urllib3
    and a thread pool configured as the relay's (one keep-alive pool of 10, 10 threads), no relay."""
    from concurrent.futures import ThreadPoolExecutor

    import urllib3

    body = Path(body_file).read_bytes()
    headers = {
        "Content-Type": "application/json",
        "Refersion-Public-Key": os.environ["BENCH_PUBLIC_KEY"],
        "Refersion-Secret-Key": os.environ["BENCH_SECRET_KEY"],
    }
    pool = urllib3.PoolManager(num_pools=1, maxsize=10, block=True, retries=False)
    executor = ThreadPoolExecutor(max_workers=10)

    def post(_: int) -> None:
        response = pool.request(
            "POST", url, body=body, headers=headers, preload_content=False, redirect=False
        )
        response.read(512)
        response.drain_conn()
        response.release_conn()
        if response.status != 200:
            raise SystemExit(f"the sandbox answered {response.status}")

    def round_of_ten() -> None:
        list(executor.map(post, range(10)))

    round_of_ten()  # opens the connections
    return _per_call(count, round_of_ten)


def main(argv: list[str]) -> int:
    mode, result_file, *rest = argv
    if mode == "floor":
        result = floor()
    elif mode == "relay":
        result = relay(rest[0])
    elif mode == "warm":
        result = warm(rest[0], int(rest[1]))
    elif mode == "posts":
        result = posts(rest[0], rest[1], int(rest[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["script_ms"] = _ms_since(_started)
    Path(result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    if os.environ.get("BENCH_CHILD_TEARDOWN") != "1":
        # A Lambda execution environment is frozen, never torn down, within a cold start: leave
        # without the interpreter's teardown (module and thread clean-up), as the floor does too.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
