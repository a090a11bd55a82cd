"""Whatever Refersion answers, each record ends in its right outcome (CONTRACT §5, §6): the real handler posts
over real HTTP to a raw-socket server (local/hostile.py) that cuts, trickles and garbles its answers."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from handler.credentials import KeyPair
from handler.outcomes import HttpVerdict
from handler.refersion_client import RefersionClient
from local.aws import drain_queue
from local.hostile import Answer, HostileRefersion, ReceivedRequest, status_answer
from local.lambda_shapes import sqs_event
from tests.support.events import as_eventbridge_body, failures, order
from tests.support.keys import NEVER_LOGGED, PUBLIC_KEY, SECRET_KEY
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration

TIMEOUT = 0.5
# What the invocation may take beyond the deadline on a busy 2-core machine: building the relay (boto3
# clients) and thread wake-ups, not another timeout; each trickled answer would take 1.7 s to 5 s whole.
SLACK = 1.2
KEYS = KeyPair(PUBLIC_KEY, SECRET_KEY)
DELIVERED = "delivered"
SLOW_HEADERS = (("X-Slow", "s" * 200),)


@pytest.fixture
def hostile() -> Iterator[HostileRefersion]:
    with HostileRefersion() as server:
        yield server


@pytest.fixture
def hostile_env(relay_env: RelayEnv, hostile: HostileRefersion) -> RelayEnv:
    relay_env.set(REFERSION_ENDPOINT=hostile.url, REFERSION_TIMEOUT_SECONDS=str(TIMEOUT))
    return relay_env


def outcome_lines(logs: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    return [line for line in lines if "outcome" in line]


def cut_after_sending(answer: Answer) -> Answer:
    """The whole scripted answer goes out, then the connection is closed (e.g. mid-body)."""
    return Answer(**{**answer.__dict__, "cut_after": len(answer.wire_bytes())})


def relay_one(env: RelayEnv, answer: Answer, logs: io.StringIO) -> tuple[list[str], list[dict[str, Any]]]:
    """Relay one order that the hostile server answers with `answer`; its batch failures, outcome lines."""
    hostile_server: HostileRefersion = env.hostile  # type: ignore[attr-defined]
    hostile_server.script(answer)
    response = env.invoke(sqs_event(as_eventbridge_body(order(f"H-{uuid.uuid4().hex[:8]}"))))
    return failures(response), outcome_lines(logs)


@pytest.fixture
def env(hostile_env: RelayEnv, hostile: HostileRefersion) -> RelayEnv:
    hostile_env.hostile = hostile  # type: ignore[attr-defined]
    return hostile_env


TRUNCATED_200 = cut_after_sending(status_answer(200, b'{"ok": tr', content_length=100))


class TestTheStatusLineDecides:
    @pytest.mark.parametrize(
        "answer",
        [
            TRUNCATED_200,
            status_answer(200, headers=(("Retry-After", "²"),)),
            status_answer(201, headers=(("Retry-After", "9" * 400),)),
            Answer(status_line=b"HTTP/1.1 200", keep_alive=False),
            Answer(status_line=b"HTTP/1.1 200 OK", cut_after=len(b"HTTP/1.1 200 OK\r\n")),
            Answer(status=200, cut_after=len(b"HTTP/1.1 200 OK\r\nConte")),
            status_answer(200, headers=(("X-Huge", "a" * 100_000),)),
            status_answer(200, headers=tuple((f"X-{i}", "v") for i in range(150))),
            status_answer(200, headers=(("Content-Length", "abc"),), content_length=-1, keep_alive=False),
            status_answer(204, headers=(("Content-Length", "5, 7"),), content_length=-1),
            status_answer(200, b"\x00garbage", headers=(("Content-Encoding", "gzip"),)),
            Answer(status_line=b"HTTP/1.0 200", body=b"{}"),
            Answer(status_line=b"HTTP/1.1 299 Odd", body=b"{}"),
        ],
        ids=[
            "body-cut",
            "unicode-digit-retry-after",
            "huge-retry-after",
            "no-reason-no-headers-close",
            "cut-after-status-line",
            "cut-in-headers",
            "100KB-header",
            "150-headers",
            "bad-content-length",
            "conflicting-content-length",
            "garbled-gzip",
            "http-1.0-no-reason",
            "299-odd",
        ],
    )
    def test_a_2xx_status_line_is_delivered_and_posted_once_whatever_follows(
        self, env: RelayEnv, hostile: HostileRefersion, relay_logs: io.StringIO, answer: Answer
    ) -> None:
        # Given Refersion answers with a 2xx status line and then something broken
        # When the handler relays one order
        failed, lines = relay_one(env, answer, relay_logs)
        # Then the order is delivered, posted once, never handed back for a second post
        assert failed == []
        assert [line["outcome"] for line in lines] == ["delivered"]
        assert hostile.post_count() == 1

    @pytest.mark.parametrize(
        ("answer", "outcome"),
        [
            (cut_after_sending(status_answer(422, b'{"error": "bad sku"', content_length=400)), "rejected"),
            (Answer(status=404, reason="", cut_after=len(b"HTTP/1.1 404\r\n")), "rejected"),
            (cut_after_sending(status_answer(503, b"busy", content_length=90)), "retry"),
            (status_answer(429, headers=(("Retry-After", "¹²"),)), "retry"),
            (Answer(raw=b"SSH-2.0-OpenSSH_9.6\r\n"), "retry"),
            (Answer(cut_after=0), "retry"),
            (Answer(status_line=b"HTTP/1.1 599"), "retry"),
        ],
        ids=["422-cut", "404-cut-after-status", "503-cut", "429-odd-wait", "not-http", "closed", "599"],
    )
    def test_other_answers_are_classified_by_the_status_that_arrived(
        self, env: RelayEnv, relay_logs: io.StringIO, answer: Answer, outcome: str
    ) -> None:
        failed, lines = relay_one(env, answer, relay_logs)
        assert [line["outcome"] for line in lines] == [outcome]
        assert bool(failed) is (outcome == "retry")

    def test_a_cut_rejection_is_quarantined_with_what_could_be_read(
        self, env: RelayEnv, relay_logs: io.StringIO
    ) -> None:
        body = b'{"error": "unknown sku PROD_Z"} '
        answer = cut_after_sending(status_answer(422, body, content_length=400))
        relay_one(env, answer, relay_logs)
        [quarantined] = drain_queue(env.aws, env.resources.dlq_url)
        reason = quarantined["MessageAttributes"]["reason"]["StringValue"]
        assert reason.startswith("Refersion answered 422: ")
        assert "unknown sku PROD_Z" in reason


class TestOneAnswerCannotFailTheBatch:
    def test_a_429_with_an_enormous_retry_after_fails_only_its_own_record(
        self, env: RelayEnv, hostile: HostileRefersion, relay_logs: io.StringIO
    ) -> None:
        # Given retries are paced on the source queue, and Refersion answers one order of three with a
        # 429 whose Retry-After has hundreds of digits
        env.set(SOURCE_QUEUE_URL=env.resources.queue_url)
        hostile.respond_with(
            lambda request: (
                status_answer(429, headers=(("Retry-After", "9" * 400),))
                if order_id_of(request) == "SLOW"
                else Answer()
            )
        )
        event = sqs_event(*(as_eventbridge_body(order(name)) for name in ("A-1", "SLOW", "A-2")))
        # When the batch is handled, Then only that record comes back; the delivered ones are acknowledged
        response = env.invoke(event)
        assert failures(response) == [event["Records"][1]["messageId"]]
        outcomes = {line["order_id"]: line["outcome"] for line in outcome_lines(relay_logs)}
        assert outcomes == {"A-1": "delivered", "SLOW": "retry", "A-2": "delivered"}
        [slow] = [line for line in outcome_lines(relay_logs) if line["order_id"] == "SLOW"]
        assert slow["retry_after_seconds"] == 12 * 3600


def order_id_of(request: ReceivedRequest) -> str:
    try:
        return str(json.loads(request.body)["order_id"])
    except (ValueError, KeyError, TypeError):
        return ""


class TestTheTimeoutBoundsTheWholeRequest:
    @pytest.mark.parametrize(
        ("answer", "outcome"),
        [
            (status_answer(200, b"x" * 100, trickle=(1, 0.05), trickle_from=40), DELIVERED),
            (status_answer(200, headers=SLOW_HEADERS, trickle=(1, 0.05), trickle_from=17), DELIVERED),
            (status_answer(200, trickle=(1, 0.1)), "retry"),
            (Answer(status=200, delay=3.0), "retry"),
        ],
        ids=["trickled-body", "trickled-headers", "trickled-status-line", "silent"],
    )
    def test_a_trickling_server_cannot_hold_a_post_past_the_timeout(
        self, env: RelayEnv, relay_logs: io.StringIO, answer: Answer, outcome: str
    ) -> None:
        # Given REFERSION_TIMEOUT_SECONDS=0.5 and an answer sent one byte every 50-100 ms (seconds in all)
        started = time.monotonic()
        # When one order is relayed
        failed, lines = relay_one(env, answer, relay_logs)
        # Then the post gave up at the deadline, and a 2xx status line that arrived still counts
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert [line["outcome"] for line in lines] == [outcome]
        assert bool(failed) is (outcome == "retry")

    def test_normal_answers_keep_one_connection_alive(self, hostile: HostileRefersion) -> None:
        client = RefersionClient(hostile.url, timeout_seconds=TIMEOUT, max_connections=2)
        answers = [client.post(b"{}", KEYS) for _ in range(4)]
        assert {answer.verdict for answer in answers} == {HttpVerdict.DELIVERED}
        assert hostile.connections_opened() == 1

    def test_a_connection_whose_answer_was_cut_by_the_deadline_is_not_reused(
        self, hostile: HostileRefersion
    ) -> None:
        # Given a 200 whose body is still trickling in when the deadline passes
        client = RefersionClient(hostile.url, timeout_seconds=TIMEOUT, max_connections=2)
        hostile.script(status_answer(200, b"y" * 200, trickle=(1, 0.05), trickle_from=40), Answer())
        cut = client.post(b"{}", KEYS)
        # When the next order is posted
        following = client.post(b"{}", KEYS)
        # Then the first was delivered (its status line arrived), the next went out on a fresh connection
        assert (cut.verdict, following.verdict) == (HttpVerdict.DELIVERED, HttpVerdict.DELIVERED)
        assert hostile.connections_opened() == 2
        assert hostile.post_count() == 2


def test_personal_data_in_a_long_rejection_is_masked_also_at_the_cut(
    env: RelayEnv, relay_logs: io.StringIO
) -> None:
    # Given a 422 whose body quotes an IPv6 address, and an email right where the excerpt is cut
    body = ("customer 2001:db8:85a3::8a2e:370:7334 refused; " + "x" * 140 + " jdoe@domain.com").encode()
    relay_one(env, status_answer(422, body), relay_logs)
    # When it is quarantined, Then the reason shows neither the address nor a piece of the email
    [quarantined] = drain_queue(env.aws, env.resources.dlq_url)
    reason = quarantined["MessageAttributes"]["reason"]["StringValue"]
    assert "8a2e" not in reason
    assert "7334" not in reason
    assert "jdo" not in reason
    assert "2001:db8:x:x:x:x:x:x" in reason
    assert not [value for value in NEVER_LOGGED if value in relay_logs.getvalue()]
