"""The local event path: the rule on the bus, and the SQS event source that invokes the function as
Lambda's poller does (batch size, deadline, record shape, what gets deleted)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.lambda_shapes import EVENTBRIDGE_KEYS, load_event
from local.stack import LocalStack
from tests.support.events import order, track

pytestmark = pytest.mark.e2e


def test_rule_forwards_order_completed_in_any_letter_case_and_nothing_else(stack: LocalStack) -> None:
    # Given Order Completed events in odd letter cases, and events that are not orders
    orders = [order("950001", event="oRDER cOMPLETED"), order("950002", event="ORDER_COMPLETED")]
    others = [load_event("datafly/page-view.json"), track("Order Completed Refund"), track("Product Viewed")]
    # When they are published on the bus
    order_ids = stack.publish_all(orders)
    stack.publish_all(others)
    # Then exactly the orders are on the queue, each as the whole EventBridge event
    messages = stack.aws.client("sqs").receive_message(
        QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    envelopes = [json.loads(m["Body"]) for m in messages]
    assert sorted(e["id"] for e in envelopes) == sorted(order_ids)
    for envelope in envelopes:
        assert set(envelope) == EVENTBRIDGE_KEYS
        assert envelope["account"] == stack.resources.bus_arn.split(":")[4]
        assert envelope["source"] == load_event("eventbridge-order.json")["source"]
    assert sorted(e["detail"]["properties"]["order_id"] for e in envelopes) == ["950001", "950002"]


def test_event_source_uses_the_templates_batch_size_and_timeout(stack: LocalStack) -> None:
    # Given more messages than one batch holds, and a handler that only looks
    stack.publish_all(order(f"96{n:04d}") for n in range(stack.settings.batch_size + 5))
    seen: list[tuple[int, int]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append((len(event["Records"]), context.get_remaining_time_in_millis()))
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    mapping = stack.mapping(handler=handler)
    # When the event source invokes it once
    invocation = mapping.poll_once()
    # Then the batch is the template's batch size, the deadline the function timeout, and every record
    # but the one reported as failed was deleted
    assert invocation is not None
    [(records, remaining_ms)] = seen
    assert records == stack.settings.batch_size
    assert (
        stack.settings.function_timeout * 1000 - 2000 < remaining_ms <= stack.settings.function_timeout * 1000
    )
    assert len(invocation.acknowledged_ids) == records - 1
    depth = mapping.depth()
    assert (depth.visible, depth.in_flight) == (5, 1)


def test_lambda_event_has_lambdas_sqs_record_shape(stack: LocalStack) -> None:
    # Given a message with attributes sent straight to the queue
    sqs = stack.aws.client("sqs")
    sqs.send_message(
        QueueUrl=stack.resources.queue_url,
        MessageBody="{}",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "test"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    events: list[dict[str, Any]] = []
    mapping = stack.mapping(handler=lambda event, context: events.append(event))
    # When the event source invokes the handler
    before = time.time()
    mapping.poll_once()
    # Then the record is shaped as Lambda shapes it
    [record] = events[0]["Records"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == stack.resources.queue_arn
    assert set(record["attributes"]) >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert int(record["attributes"]["SentTimestamp"]) <= before * 1000
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "test",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    # ... and a handler that returns None acknowledges the whole batch
    assert mapping.is_drained()


def test_a_handler_that_raises_fails_the_whole_batch(stack: LocalStack) -> None:
    # Given two orders on the queue and a handler that crashes
    stack.publish_all([order("970001"), order("970002")])

    def crash(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    mapping = stack.mapping(handler=crash)
    # When it is invoked
    invocation = mapping.poll_once()
    # Then nothing was deleted: both stay in flight until the visibility timeout
    assert invocation is not None
    assert invocation.error == "handler raised RuntimeError: boom"
    assert invocation.acknowledged_ids == []
    assert (mapping.depth().visible, mapping.depth().in_flight) == (0, 2)


MALFORMED_RESPONSES: list[Any] = [
    {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"id": "x"}]},
    {"batchItemFailures": "all"},
    "ok",
]


def test_a_malformed_batch_response_fails_the_whole_batch(stack: LocalStack) -> None:
    # Given one order per malformed response, each batch sent to a handler answering with one of them
    stack.publish_all(order(f"97010{n}") for n in range(len(MALFORMED_RESPONSES)))
    answers = iter(MALFORMED_RESPONSES)
    mapping = stack.mapping(
        handler=lambda event, context: next(answers), batch_size=1, batching_window_seconds=0
    )
    # When each is invoked
    invocations = [mapping.poll_once() for _ in MALFORMED_RESPONSES]
    # Then Lambda's rule applies: the whole batch failed, nothing was deleted
    for invocation in invocations:
        assert invocation is not None
        assert invocation.error is not None
        assert invocation.error.startswith("malformed response"), invocation.response
        assert invocation.acknowledged_ids == []
    assert mapping.depth().in_flight == len(MALFORMED_RESPONSES)


def test_background_thread_mode_drains_the_queue(stack: LocalStack) -> None:
    # Given the event source polling in the background, as Lambda's does
    with stack.mapping() as mapping:
        # When orders are published meanwhile
        stack.publish_all([order("980001"), order("980002")])
        # Then they are delivered without anyone driving the loop
        assert stack.sandbox.wait_for(lambda s: len(s.accepted_order_ids()) == 2, timeout=15)
        assert mapping.wait_until_drained(timeout=15)
    assert sorted(stack.sandbox.accepted_order_ids()) == ["980001", "980002"]
