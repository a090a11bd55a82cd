"""Quarantine of invalid and rejected records on the dead-letter queue (SPEC §6)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from handler.outcomes import RecordResult

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

_REASON_LIMIT = 1024


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
        try:
            self._client.send_message(
                QueueUrl=self._queue_url, MessageBody=body, MessageAttributes=attributes
            )
        except Exception as exc:
            raise QuarantineError(f"dead-letter queue send failed ({type(exc).__name__})") from None


def quarantine_attributes(result: RecordResult) -> dict[str, MessageAttributeValueTypeDef]:
    """Why the record is here, in words (reason) and as fields to filter on."""
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        "outcome": {"DataType": "String", "StringValue": result.outcome.value},
        "reason": {"DataType": "String", "StringValue": result.reason[:_REASON_LIMIT] or "-"},
        "source_record_id": {"DataType": "String", "StringValue": result.record_id or "-"},
        "quarantined_at": {"DataType": "String", "StringValue": datetime.now(UTC).isoformat()},
    }
    if result.order_id:
        attributes["order_id"] = {"DataType": "String", "StringValue": result.order_id}
    if result.http_status is not None:
        attributes["http_status"] = {"DataType": "Number", "StringValue": str(result.http_status)}
    return attributes
