"""When a record was sent (handler.triggers): what CONTRACT §9's refund wait is counted from."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

from handler.triggers import InboundRecord
from local.lambda_shapes import eventbridge_envelope, sqs_record


def test_an_sqs_record_was_sent_at_its_sent_timestamp() -> None:
    record = sqs_record("{}")
    record["attributes"]["SentTimestamp"] = "1764410400000"  # 2025-11-29T10:00:00Z
    inbound = InboundRecord.from_sqs(SqsRecordModel.model_validate(record))
    assert inbound.sent_at == datetime(2025, 11, 29, 10, 0, tzinfo=UTC)


def test_an_eventbridge_event_was_sent_at_its_time_and_an_unreadable_time_is_unknown() -> None:
    event = eventbridge_envelope({"type": "track"})
    event["time"] = "2026-11-20T10:00:00Z"
    assert InboundRecord.from_eventbridge(event).sent_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    event["time"] = "yesterday"
    assert InboundRecord.from_eventbridge(event).sent_at is None
