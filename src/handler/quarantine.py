"""Quarantine of invalid and rejected records on the dead-letter queue (CONTRACT §6).

What is sent is always sendable, whatever the record holds: every attribute value is limited in
length and escaped to the characters SQS accepts (handler.sqs_text), and the body, unchanged for
any record SQS itself delivered, is escaped or cut only when it could not travel otherwise (an
attribute then says so). A record's content is never a reason for its quarantine to fail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from handler.observability import SQS, count_dependency_failure
from handler.outcomes import RecordResult
from handler.sqs_text import sendable_text, utf8_size

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

# template.yaml's OrderDeadLetterQueue MaximumMessageSize (a test keeps the two equal). SQS counts
# the body plus every attribute's name, data type and value, all in UTF-8 bytes.
DLQ_MAX_MESSAGE_BYTES = 1024 * 1024
_REASON_LIMIT = 1024
_VALUE_LIMIT = 256


class QuarantineError(Exception):
    """The record could not be set aside; it must come back rather than be lost."""


class Quarantine(Protocol):
    def send(self, body: str, result: RecordResult) -> None: ...


class SqsQuarantine:
    """Sends the original body unchanged, so that once the cause is fixed it can be redriven as it was."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, body: str, result: RecordResult) -> None:
        attributes = quarantine_attributes(result)
        sendable_body = quarantine_body(body, attributes)
        try:
            self._client.send_message(
                QueueUrl=self._queue_url, MessageBody=sendable_body, MessageAttributes=attributes
            )
        except Exception as exc:
            count_dependency_failure(SQS, "SendMessage")
            raise QuarantineError(f"dead-letter queue send failed ({type(exc).__name__})") from None


def quarantine_attributes(result: RecordResult) -> dict[str, MessageAttributeValueTypeDef]:
    """Why the record is here, in words (reason) and as fields to filter on."""
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        "outcome": _text(result.outcome.value),
        "reason": _text(result.reason, _REASON_LIMIT),
        "source_record_id": _text(result.record_id),
        "quarantined_at": _text(datetime.now(UTC).isoformat()),
    }
    if result.order_id:
        attributes["order_id"] = _text(result.order_id)
    if result.http_status is not None:
        attributes["http_status"] = {"DataType": "Number", "StringValue": str(result.http_status)}
    return attributes


def quarantine_body(body: str, attributes: dict[str, MessageAttributeValueTypeDef]) -> str:
    """The body as it came, made sendable if it is not (noted in `attributes`, which it may extend).

    Escaping matters only for bodies SQS could never have delivered (EventBridge-direct events are
    escaped on arrival, see handler.triggers); cutting only for bodies that, with the attributes,
    exceed what the dead-letter queue accepts.
    """
    sendable = sendable_text(body) or "-"
    if sendable != body:
        attributes["body_escaped"] = _text("characters SQS cannot carry are written as \\uXXXX")
    room = DLQ_MAX_MESSAGE_BYTES - _attributes_size(attributes) - 256  # 256: the note added below
    size = utf8_size(sendable)
    if size <= room:
        return sendable
    attributes["body_truncated"] = _text(f"body cut to {room} of its {size} bytes")
    return sendable.encode()[:room].decode(errors="ignore")


def _text(value: str, limit: int = _VALUE_LIMIT) -> MessageAttributeValueTypeDef:
    # SQS refuses an empty string value; the limit keeps the attributes far inside the message size.
    return {"DataType": "String", "StringValue": sendable_text(value[:limit]) or "-"}


def _attributes_size(attributes: dict[str, MessageAttributeValueTypeDef]) -> int:
    return sum(
        utf8_size(name) + utf8_size(value["DataType"]) + utf8_size(value.get("StringValue", ""))
        for name, value in attributes.items()
    )
