"""Generated answers from a hostile Refersion, through the real handler (CONTRACT §5-§6): whatever comes back,
each record ends in exactly one outcome, a 2xx status line is never retried, the handler never raises,
and one record's answer never fails the other records of its batch."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from email.utils import format_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.hostile import Answer, HostileRefersion, ReceivedRequest
from local.lambda_shapes import sqs_event
from tests.support.events import as_eventbridge_body, failures, order
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration

TIMEOUT_SECONDS = "0.3"
STATUSES = [101, 200, 201, 204, 299, 302, 400, 401, 403, 404, 408, 422, 425, 429, 500, 503, 599]
# Header values travel as latin-1: any of its characters but CR and LF (which would end the header).
HEADER_TEXT = st.text(alphabet=st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=30)
RETRY_AFTER = st.none() | HEADER_TEXT | st.integers(min_value=0, max_value=10**400).map(str)
RETRY_AFTER_DATES = st.datetimes().map(lambda when: format_datetime(when, usegmt=False))


@st.composite
def hostile_answers(draw: st.DrawFn) -> Answer:
    """A status line, headers (Retry-After of any shape, sometimes huge), a body, then maybe a cut, a
    Content-Length the body never reaches, and a trickle that starts right after the status line."""
    status = draw(st.sampled_from(STATUSES))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    reason = draw(st.sampled_from(["", "OK", "Odd", "Some Reason"]))
    status_line = f"{version} {status} {reason}".rstrip().encode()
    headers: list[tuple[str, str]] = []
    retry_after = draw(RETRY_AFTER | RETRY_AFTER_DATES)
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        headers.append(("X-Huge", "h" * draw(st.sampled_from([70_000, 100_000]))))
    body = draw(st.binary(max_size=300))
    missing = draw(st.sampled_from([0, 0, 1, 64]))
    answer = Answer(
        status_line=status_line,
        headers=tuple(headers),
        body=body,
        content_length=len(body) + missing,
        trickle=draw(st.none() | st.tuples(st.integers(1, 256), st.sampled_from([0.001, 0.005, 0.01]))),
        trickle_from=len(status_line) + 2,
    )
    wire = len(answer.wire_bytes())
    cut = draw(
        st.none()
        | st.just(0)
        | st.integers(len(version) + 1, len(version) + 2)  # inside the status code: not a status line
        | st.integers(len(status_line) + 2, wire)
    )
    if cut is None and missing:
        cut = wire  # the body falls short of its Content-Length, then the connection closes
    return Answer(**{**answer.__dict__, "cut_after": cut})


def status_line_arrived(answer: Answer) -> bool:
    assert answer.status_line is not None
    return answer.cut_after is None or answer.cut_after >= len(answer.status_line) + 2


def status_of(answer: Answer) -> int:
    assert answer.status_line is not None
    return int(answer.status_line.split()[1])


def expected_outcome(answer: Answer) -> str:
    """CONTRACT §5's table, applied to the status line if it arrived."""
    if not status_line_arrived(answer):
        return "retry"
    status = status_of(answer)
    if 200 <= status < 300:
        return "delivered"
    if 400 <= status < 500 and status not in (401, 403, 408, 425, 429):
        return "rejected"
    return "retry"


def order_id_of(request: ReceivedRequest) -> str:
    try:
        return str(json.loads(request.body)["order_id"])
    except (ValueError, KeyError, TypeError):
        return ""


@pytest.fixture
def hostile(relay_env: RelayEnv) -> Iterator[HostileRefersion]:
    """The hostile server, and the relay pointed at it with a short timeout (once for all examples)."""
    with HostileRefersion() as server:
        relay_env.set(
            REFERSION_ENDPOINT=server.url,
            REFERSION_TIMEOUT_SECONDS=TIMEOUT_SECONDS,
            SOURCE_QUEUE_URL=relay_env.resources.queue_url,  # retries are paced: the pacer runs too
        )
        yield server


@given(answer=hostile_answers(), calm_records=st.integers(min_value=0, max_value=2))
@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_answer_ends_in_one_right_outcome_and_fails_no_other_record(
    relay_env: RelayEnv,
    hostile: HostileRefersion,
    relay_logs: io.StringIO,
    answer: Answer,
    calm_records: int,
) -> None:
    # Given a batch where one order gets the generated answer and the others a plain 200
    hostile.reset()
    tag = uuid.uuid4().hex[:8]
    hostile_id, calm_ids = f"HOSTILE-{tag}", [f"CALM-{tag}-{i}" for i in range(calm_records)]
    hostile.respond_with(lambda request: answer if order_id_of(request) == hostile_id else Answer())
    event = sqs_event(*(as_eventbridge_body(order(order_id)) for order_id in [hostile_id, *calm_ids]))
    logged_before = len(relay_logs.getvalue())
    # When the handler relays the batch (it must not raise, whatever came back)
    response = relay_env.invoke(event)
    # Then each record has exactly one outcome line, the right one
    lines = [json.loads(line) for line in relay_logs.getvalue()[logged_before:].splitlines() if line.strip()]
    outcomes = [(line["order_id"], line["outcome"]) for line in lines if "outcome" in line]
    assert sorted(outcomes) == sorted(
        [(hostile_id, expected_outcome(answer)), *((calm, "delivered") for calm in calm_ids)]
    )
    # And only the hostile record can come back; a 2xx status line was posted once and never retried
    hostile_message = event["Records"][0]["messageId"]
    assert failures(response) == ([hostile_message] if expected_outcome(answer) == "retry" else [])
    posts = [request for request in hostile.received() if order_id_of(request) == hostile_id]
    if status_line_arrived(answer) and 200 <= status_of(answer) < 300:
        assert len(posts) == 1
