"""`make invoke` (local/invoke.py): the function run once on a sample event, as `sam local invoke` runs it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from local import invoke
from local.stack import LocalStack
from tests.support.keys import NEVER_LOGGED, PUBLIC_KEY, SECRET_KEY

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "events").glob("*.json"))
SEED_ORDER_ID = "20150401102883"


def run_invoke(event_file: Path | str) -> tuple[int, str, str, LocalStack | None]:
    """local.invoke's main in this process; its exit status, stdout, stderr and the stack it ran on."""
    stacks: list[LocalStack] = []

    def make_stack() -> LocalStack:
        stacks.append(LocalStack(public_key=PUBLIC_KEY, secret_key=SECRET_KEY, fast=False))
        return stacks[-1]

    out, err = io.StringIO(), io.StringIO()
    status = invoke.main([str(event_file)], out, err, make_stack=make_stack)
    return status, out.getvalue(), err.getvalue(), stacks[0] if stacks else None


def json_lines(text: str) -> list[dict[str, object]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_there_are_sample_events_to_run() -> None:
    # Given/When: the samples in events/ / Then: the parametrised test below has something to run
    assert len(SAMPLES) >= 4


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_event_runs_once_and_prints_a_response_and_one_outcome_line_per_record(
    sample: Path,
) -> None:
    # Given a sample event from events/
    event = json.loads(sample.read_text())
    records = len(event["Records"]) if "Records" in event else 1

    # When it is invoked on the local stack
    status, out, err, stack = run_invoke(sample)

    # Then the handler returned: exit 0, its JSON response alone on stdout, no record left for retry
    assert status == 0, err
    response = json.loads(out)
    assert response.get("batchItemFailures", []) == []
    # and stderr holds START, one outcome line per record, the EMF metrics, END and REPORT, nothing secret
    outcomes = [line for line in json_lines(err) if "outcome" in line]
    assert len(outcomes) == records
    assert any("_aws" in line for line in json_lines(err))
    assert "START RequestId:" in err
    assert "REPORT RequestId:" in err
    assert "Memory Size: 512 MB" in err
    assert not [value for value in NEVER_LOGGED if value in out + err]
    # and the stack stopped without leaving a thread or socket behind
    assert stack is not None
    assert stack.left_behind == []


def test_the_seed_order_is_delivered_at_the_sandbox_with_the_template_environment() -> None:
    # Given the bus -> queue -> function sample carrying the seed's order
    # When it is invoked
    status, _, err, stack = run_invoke(REPO / "events" / "sqs-eventbridge-order.json")

    # Then the sandbox credited that order exactly once
    assert status == 0, err
    assert stack is not None
    assert stack.sandbox.accepted_order_ids() == [SEED_ORDER_ID]
    # and the function ran with template.yaml's own settings, not the fast local overrides
    [line] = [line for line in json_lines(err) if line.get("outcome") == "delivered"]
    assert line["order_id"] == SEED_ORDER_ID
    assert line["function_memory_size"] == 512
    assert stack.environment["REFERSION_TIMEOUT_SECONDS"] == "10"
    assert stack.environment["RETRY_BASE_DELAY_SECONDS"] == "30"


def test_an_event_the_handler_refuses_exits_1_with_the_error_as_lambda_reports_it() -> None:
    # Given a bare Datafly event (neither an SQS batch nor an EventBridge event)
    # When it is invoked
    status, out, err, _ = run_invoke(REPO / "events" / "datafly" / "seed-order.json")

    # Then the handler raised: exit 1, the error document on stdout, [ERROR] and the traceback in the logs
    assert status == 1
    error = json.loads(out)
    assert error["errorType"] == "UnsupportedTrigger"
    assert error["stackTrace"]
    assert "[ERROR] UnsupportedTrigger: expected an SQS batch or an EventBridge event" in err
    assert "Traceback (most recent call last):" in err


def test_a_missing_file_exits_2_with_one_line_and_starts_nothing(tmp_path: Path) -> None:
    # Given a path where no file is
    missing = tmp_path / "no-such-event.json"

    # When `python -m local.invoke` is run on it, as `make invoke` runs it
    done = subprocess.run(
        [sys.executable, "-m", "local.invoke", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )

    # Then it exits 2 with one line naming the file, and prints nothing else
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"invoke: {missing}: no such file"]
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [("not json at all", "not JSON"), (b"\xff\xfe{", "cannot be read")],
    ids=["not-json", "not-utf8"],
)
def test_a_file_that_is_not_a_json_event_exits_2_with_one_line(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    # Given a file that is not a JSON document
    path = tmp_path / "event.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    # When it is invoked
    status, out, err, stack = run_invoke(path)

    # Then exit 2, one line saying why, and no stack was started
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert expected in err
    assert stack is None
