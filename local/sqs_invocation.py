"""One invocation of the function by the SQS event source, as Lambda defines it: the event built from
received messages, the rules for ``batchItemFailures``, and what the invocation wrote (captured).

local/poller.py drives these; the records here are what it keeps of each invocation.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class RecordReport:
    """One record of one invocation: what the handler said about it and what the poller did with it."""

    message_id: str
    receive_count: int
    body: str
    acknowledged: bool  # deleted from the queue after the invocation
    outcome: str | None = None  # from the relay's outcome log line
    order_id: str | None = None
    reason: str | None = None
    http_status: int | None = None

    def envelope_id(self) -> str | None:
        """The EventBridge event id, when the body is an EventBridge envelope (bus -> rule -> queue)."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return None
        if isinstance(decoded, dict) and "detail-type" in decoded and isinstance(decoded.get("id"), str):
            return str(decoded["id"])
        return None


@dataclass(frozen=True)
class Invocation:
    number: int
    request_id: str
    started_at: float  # time.time()
    duration_seconds: float
    records: tuple[RecordReport, ...]
    response: Any
    error: str | None  # why the whole batch failed (raised, timed out, malformed response), if it did
    failed_ids: tuple[str, ...]  # batchItemFailures as returned
    logs: tuple[dict[str, Any], ...] = ()
    metrics: tuple[dict[str, Any], ...] = ()  # EMF documents
    delete_failures: tuple[str, ...] = ()

    @property
    def acknowledged_ids(self) -> list[str]:
        return [record.message_id for record in self.records if record.acknowledged]


@dataclass
class Captured:
    """What one invocation wrote: log lines, and EMF metric documents (from stdout)."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def take(self, log_text: str, stdout_text: str) -> None:
        for line in (log_text + "\n" + stdout_text).splitlines():
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except ValueError:
                document = {"raw": line}
            if not isinstance(document, dict):
                document = {"raw": line}
            (self.metrics if "_aws" in document else self.logs).append(document)


@contextlib.contextmanager
def captured_output(*, capture: bool, log_stream: TextIO | None) -> Iterator[Captured]:
    """The relay's log lines and stdout (EMF) while the block runs; the log lines are then written to
    ``log_stream`` (or where the relay's logger wrote before)."""
    captured = Captured()
    if not capture:
        yield captured
        return
    stream_handler = _relay_log_handler()
    log_buffer, stdout_buffer = io.StringIO(), io.StringIO()
    previous = stream_handler.setStream(log_buffer) if stream_handler is not None else None
    try:
        with contextlib.redirect_stdout(stdout_buffer):
            yield captured
    finally:
        if stream_handler is not None and previous is not None:
            stream_handler.setStream(previous)
        text = log_buffer.getvalue()
        destination = log_stream or previous
        if text and destination is not None:
            destination.write(text)
            destination.flush()
        captured.take(text, stdout_buffer.getvalue())


def _relay_log_handler() -> logging.StreamHandler[TextIO] | None:
    """The relay's Powertools Logger handler, whose stream an invocation's log lines go to."""
    try:
        from handler.observability import logger
    except ImportError:
        return None
    handler = logger.registered_handler
    return handler if isinstance(handler, logging.StreamHandler) else None


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributeValue in the lower-camel shape Lambda's SQS event uses (binary as base64)."""
    shaped: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return shaped


def batch_item_failures(response: Any, ids: Sequence[str]) -> tuple[list[str], str | None]:
    """The message ids to keep, or a reason to fail the whole batch (Lambda's documented rules)."""
    if response is None:
        return [], None
    if not isinstance(response, dict):
        return [], f"malformed response (a {type(response).__name__}, not an object)"
    failures = response.get("batchItemFailures")
    if failures is None:
        return [], None
    if not isinstance(failures, list):
        return [], "malformed response: batchItemFailures is not a list"
    kept: list[str] = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in ids:
            return [], f"malformed response: bad itemIdentifier {identifier!r}"
        kept.append(identifier)
    return kept, None


def lambda_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The record Lambda's SQS event holds for one received message."""
    body = str(message["Body"])
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()},
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def outcome_lines(logs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """record_id -> the relay's outcome log line for it."""
    return {
        str(line["record_id"]): line
        for line in logs
        if isinstance(line.get("outcome"), str) and isinstance(line.get("record_id"), str)
    }


def record_report(
    message: Mapping[str, Any], *, acknowledged: bool, outcome: Mapping[str, Any] | None
) -> RecordReport:
    attributes = message.get("Attributes") or {}
    status = outcome.get("http_status") if outcome else None
    return RecordReport(
        message_id=str(message["MessageId"]),
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        body=str(message["Body"]),
        acknowledged=acknowledged,
        outcome=str(outcome["outcome"]) if outcome else None,
        order_id=str(outcome["order_id"]) if outcome and outcome.get("order_id") is not None else None,
        reason=str(outcome["reason"]) if outcome and outcome.get("reason") is not None else None,
        http_status=int(status) if isinstance(status, int) else None,
    )
