"""Whatever a record holds, it ends in exactly one outcome on its own (CONTRACT §6): through the real
handler, boto3 to a moto server over HTTP, urllib3 to the Refersion sandbox."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.outcomes import Outcome, RecordResult
from handler.quarantine import DLQ_MAX_MESSAGE_BYTES, quarantine_attributes, quarantine_body
from handler.sqs_text import is_sendable
from local.aws import drain_queue
from local.lambda_shapes import FakeLambdaContext, eventbridge_envelope, sqs_event
from local.seed import seed_event
from tests.support.events import as_eventbridge_body, failures
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration

DEEP = 50_000


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def _quarantined(relay_env: RelayEnv) -> list[dict[str, Any]]:
    return drain_queue(relay_env.aws, relay_env.resources.dlq_url)


def test_json_nested_tens_of_thousands_deep_is_invalid_and_quarantined_not_retried(
    relay_env: RelayEnv,
) -> None:
    # Given a body nested 50,000 deep beside a good order
    deep = '{"detail": ' + _deep_json(DEEP) + "}"
    event = sqs_event(deep, as_eventbridge_body(seed_event()))
    # When the batch is handled; Then nothing comes back, the good order is delivered, the deep one set aside
    assert failures(relay_env.invoke(event)) == []
    assert relay_env.sandbox.accepted_order_ids() == ["20150401102883"]
    [quarantined] = _quarantined(relay_env)
    assert quarantined["Body"] == deep
    assert quarantined["MessageAttributes"]["outcome"]["StringValue"] == "invalid"
    assert "nested too deeply" in quarantined["MessageAttributes"]["reason"]["StringValue"]


def test_an_eventbridge_direct_event_nested_too_deeply_is_invalid_and_returns(relay_env: RelayEnv) -> None:
    envelope = eventbridge_envelope(seed_event())
    # Given an event (as Lambda hands it over, already decoded) nested deeper than json.dumps can write
    envelope["detail"]["context"]["page"] = []
    nested: Any = envelope["detail"]["context"]["page"]
    for _ in range(DEEP):
        nested.append([])
        nested = nested[-1]
    assert relay_env.invoke(envelope)["outcome"] == "invalid"
    [quarantined] = _quarantined(relay_env)
    assert json.loads(quarantined["Body"])["id"] == envelope["id"]


def test_a_lone_surrogate_in_the_order_id_is_invalid_and_quarantined_without_it_in_the_attributes(
    relay_env: RelayEnv,
) -> None:
    # Given an order whose order_id is the JSON escape of a lone surrogate (SQS carries the 6 ASCII chars)
    body = as_eventbridge_body(seed_event(order_id="\udc00"))
    assert "\\udc00" in body
    # When handled; Then it is invalid (never retried, never posted) and its quarantine went through
    assert failures(relay_env.invoke(sqs_event(body))) == []
    assert relay_env.sandbox.received() == []
    [quarantined] = _quarantined(relay_env)
    assert quarantined["Body"] == body
    attributes = quarantined["MessageAttributes"]
    assert attributes["outcome"]["StringValue"] == "invalid"
    assert "lone surrogate" in attributes["reason"]["StringValue"]
    # an id the mapping cannot read is left out of the attributes (and the log line): the reason names it
    assert "order_id" not in attributes


def test_control_characters_never_reach_a_quarantine_attribute() -> None:
    # moto accepts control characters in attributes; SQS does not: the relay enforces SQS's set itself
    result = RecordResult(
        "id\x00", Outcome.REJECTED, "bad \x01 \ufffe", order_id="A\x1fB\udc00", http_status=422
    )
    attributes = quarantine_attributes(result)
    assert all(is_sendable(value.get("StringValue", "")) for value in attributes.values())
    assert attributes["order_id"]["StringValue"] == "A\\u001fB\\udc00"


def test_a_body_too_large_for_the_dead_letter_queue_is_cut_and_says_so() -> None:
    attributes = quarantine_attributes(RecordResult("id", Outcome.INVALID, "too large"))
    body = quarantine_body("é" * DLQ_MAX_MESSAGE_BYTES, attributes)
    size = len(body.encode()) + sum(
        len(n.encode()) + len(v["DataType"]) + len(v["StringValue"].encode()) for n, v in attributes.items()
    )
    assert size <= DLQ_MAX_MESSAGE_BYTES
    assert "body cut to" in attributes["body_truncated"]["StringValue"]


def test_an_sqs_record_over_the_dead_letter_queues_size_is_quarantined_not_retried(
    relay_env: RelayEnv,
) -> None:
    body = json.dumps({"pad": "x" * DLQ_MAX_MESSAGE_BYTES})
    assert failures(relay_env.invoke(sqs_event(body))) == []
    [quarantined] = _quarantined(relay_env)
    assert quarantined["MessageAttributes"]["outcome"]["StringValue"] == "invalid"
    assert "body_truncated" in quarantined["MessageAttributes"]


def test_an_eventbridge_direct_order_with_non_ascii_text_under_256_kb_of_utf8_is_delivered(
    relay_env: RelayEnv,
) -> None:
    # Given an order carrying ~200 KB of UTF-8 text (~400 KB once written with ASCII escapes)
    envelope = eventbridge_envelope(seed_event())
    envelope["detail"]["context"]["page"] = {"title": "订单" * 33_000}
    assert len(json.dumps(envelope, ensure_ascii=False).encode()) < 256 * 1024 < len(json.dumps(envelope))
    # When it comes straight from EventBridge; Then its size is counted in UTF-8 bytes and it is delivered
    assert relay_env.invoke(envelope)["outcome"] == "delivered"


def test_a_budget_over_the_invocation_logs_one_error_not_one_per_record(
    relay_env: RelayEnv, relay_logs: io.StringIO
) -> None:
    relay_env.set(REFERSION_TIMEOUT_SECONDS="30")
    event = sqs_event(*(as_eventbridge_body(seed_event(order_id=f"B-{i}")) for i in range(5)))
    response = relay_env.invoke(event, FakeLambdaContext(remaining_ms=60_000))
    assert len(failures(response)) == 5
    errors = [x for x in relay_logs.getvalue().splitlines() if '"level":"ERROR"' in x]
    assert len(errors) == 1
    assert "REFERSION_TIMEOUT_SECONDS" in errors[0]


# --- properties: generated records through the real handler ------------------------------------

_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None), st.sampled_from(["\udc00", "\ud800", "\x00", "\x1f", "\ufffe", "é", "😀"])
    ),
    max_size=12,
)
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _text)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def hostile_order(draw: st.DrawFn) -> dict[str, Any]:
    """The seed's order with some fields replaced by values of any type, encoding or depth."""
    event = seed_event(order_id=draw(st.from_regex(r"H-[0-9]{1,6}", fullmatch=True)))
    for field in draw(
        st.lists(
            st.sampled_from(["order_id", "cart_id", "currency", "tax", "coupon", "products"]), max_size=2
        )
    ):
        event["properties"][field] = draw(_json_value)
    if draw(st.booleans()):
        event["context"]["traits"]["first_name"] = draw(_text)
    return event


@st.composite
def hostile_body(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["order", "deep", "garbage", "large"]))
    if kind == "order":
        return as_eventbridge_body(draw(hostile_order()))
    if kind == "deep":
        return _deep_json(draw(st.sampled_from([999, 1_000, 5_000, 60_000])))
    if kind == "large":
        size = draw(st.sampled_from([256 * 1024 - 200, 256 * 1024 + 1]))
        return json.dumps({"pad": "é" * (size // 2)})
    return draw(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30))


_ONE_OUTCOME = {"delivered", "retry", "rejected", "invalid", "dropped", "skipped", "duplicate"}
_hostile = settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


@_hostile
@given(bodies=st.lists(hostile_body(), min_size=1, max_size=4))
def test_generated_records_each_end_in_one_outcome_and_never_fail_their_neighbours(
    relay_env: RelayEnv, relay_logs: io.StringIO, bodies: list[str]
) -> None:
    # Given generated records beside a good order, in one batch
    good = as_eventbridge_body(seed_event(order_id="NEIGHBOUR"))
    event = sqs_event(good, *bodies)
    relay_logs.truncate(0)
    relay_logs.seek(0)
    # When the handler runs (it must not raise)
    response = relay_env.invoke(event)
    # Then no record comes back (nothing here is transient), the neighbour is delivered, and each record
    # logged exactly one outcome
    assert failures(response) == []
    assert "NEIGHBOUR" in relay_env.sandbox.accepted_order_ids()
    outcomes = [json.loads(line) for line in relay_logs.getvalue().splitlines() if '"outcome"' in line]
    assert sorted(o["record_id"] for o in outcomes) == sorted(r["messageId"] for r in event["Records"])
    assert {o["outcome"] for o in outcomes} <= _ONE_OUTCOME - {"retry"}
    _quarantined(relay_env)


@_hostile
@given(order=hostile_order())
def test_generated_eventbridge_direct_events_end_in_one_outcome_without_raising(
    relay_env: RelayEnv, order: dict[str, Any]
) -> None:
    result = relay_env.invoke(eventbridge_envelope(order))
    assert result["outcome"] in _ONE_OUTCOME - {"retry"}
    _quarantined(relay_env)
