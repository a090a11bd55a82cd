"""The three trigger shapes of CONTRACT §2, reduced to one kind of inbound record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsRecordModel
from pydantic import ValidationError

from handler.sqs_text import sendable_text, utf8_size
from mapping import InvalidEvent

# SQS's classic message limit and EventBridge's event limit: a larger record cannot have come through
# the documented path, and could not be quarantined or redriven as it is.
MAX_RECORD_BYTES = 256 * 1024
_TOO_DEEP = "body: JSON nested too deeply to read"


class UnsupportedTrigger(Exception):
    """The function was invoked with something that is neither an SQS batch nor an EventBridge event."""


@dataclass(frozen=True)
class InboundRecord:
    """One record to relay, whatever trigger it came through."""

    record_id: str
    # What quarantine sends on, unchanged, so a fixed record can be redriven as it was.
    raw_body: str
    # The already-decoded payload for EventBridge-direct events (Lambda parsed the JSON for us).
    payload: dict[str, Any] | None = None
    receipt_handle: str | None = None
    receive_count: int = 1
    # Why the record cannot be read at all (it is invalid), when that was found on arrival.
    unreadable: str | None = None
    # When the record was sent: SQS's SentTimestamp, or the EventBridge event's time (CONTRACT §9's wait).
    sent_at: datetime | None = None

    @classmethod
    def from_sqs(cls, record: SqsRecordModel) -> InboundRecord:
        return cls(
            record_id=record.messageId,
            raw_body=str(record.body),
            receipt_handle=record.receiptHandle,
            receive_count=int(record.attributes.ApproximateReceiveCount),
            sent_at=record.attributes.SentTimestamp,
        )

    @classmethod
    def from_eventbridge(cls, event: dict[str, Any]) -> InboundRecord:
        record_id = sendable_text(str(event.get("id", "")))
        try:
            # UTF-8 text as EventBridge sent it (sizes are counted in UTF-8 bytes, CONTRACT §6), with only the
            # characters SQS cannot carry escaped the JSON way, so the quarantined copy reads back equal.
            raw_body = sendable_text(json.dumps(event, ensure_ascii=False))
        except (RecursionError, ValueError, TypeError):
            # Nested too deeply to write back as JSON: keep what identifies the event; it is invalid.
            summary = {key: value for key, value in event.items() if isinstance(value, str)}
            raw_body = sendable_text(json.dumps(summary, ensure_ascii=False))
            return cls(record_id=record_id, raw_body=raw_body, unreadable=_TOO_DEEP)
        return cls(record_id=record_id, raw_body=raw_body, payload=event, sent_at=_event_time(event))


def _event_time(event: dict[str, Any]) -> datetime | None:
    """The EventBridge event's `time` (RFC 3339, UTC), when it has a readable one."""
    value = event.get("time")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def is_sqs_batch(event: object) -> bool:
    return isinstance(event, dict) and isinstance(event.get("Records"), list)


def is_eventbridge_event(event: object) -> bool:
    return isinstance(event, dict) and "detail-type" in event and "detail" in event


def datafly_event_of(record: InboundRecord) -> dict[str, Any]:
    """The Datafly event a record carries, or InvalidEvent saying why there is none.

    Bodies are decoded here rather than with a `Json[...]` field on the SQS model: a body that is
    not JSON must end as an invalid outcome for that record alone, never fail the whole batch.
    """
    if record.unreadable is not None:
        raise InvalidEvent((record.unreadable,))
    size = utf8_size(record.raw_body)
    if size > MAX_RECORD_BYTES:
        raise InvalidEvent(
            (f"body: {size} bytes is over the {MAX_RECORD_BYTES // 1024} KB limit of a record",)
        )
    payload = record.payload if record.payload is not None else _decode_json_object(record.raw_body)
    payload = _unwrap_invocation_record(payload)
    if is_eventbridge_event(payload):
        return _detail_of(payload)
    return payload


def _unwrap_invocation_record(payload: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge-direct event that failed every retry reaches the DLQ as Lambda's on-failure
    invocation record; redriven to the queue, the event to relay is its requestPayload."""
    inner = payload.get("requestPayload")
    if "requestContext" in payload and isinstance(inner, dict):
        return inner
    return payload


def _decode_json_object(body: str) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except ValueError:
        raise InvalidEvent(("body: is not JSON",)) from None
    except RecursionError:
        # Not a ValueError: uncaught, it would make the record come back until the queue gives up.
        raise InvalidEvent((_TOO_DEEP,)) from None
    if not isinstance(decoded, dict):
        raise InvalidEvent((f"body: is JSON but not an object (got {type(decoded).__name__})",))
    return decoded


def _detail_of(envelope: dict[str, Any]) -> dict[str, Any]:
    try:
        parsed = EventBridgeModel.model_validate(envelope)
    except ValidationError as exc:
        fields = ", ".join(sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]}))
        raise InvalidEvent((f"body: EventBridge envelope is malformed ({fields})",)) from None
    if not isinstance(parsed.detail, dict):
        raise InvalidEvent(("detail: is not an object",))
    return parsed.detail
