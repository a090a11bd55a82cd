"""The events and context Lambda hands the function, built the way the AWS services build them."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.aws import ACCOUNT, REGION

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
# Keys of an event as EventBridge delivers it to a target.
EVENTBRIDGE_KEYS = frozenset(
    {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
)
DEFAULT_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:refersion-relay-OrderQueue"


def load_event(name: str) -> dict[str, Any]:
    """A sample from events/ (the same files `sam local invoke -e` uses)."""
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return loaded


@dataclass
class FakeLambdaContext:
    """What Powertools and the relay read from Lambda's context object."""

    remaining_ms: float = 60_000
    function_name: str = "refersion-relay"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:refersion-relay"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_ms - (time.monotonic() - self._started) * 1000)


def eventbridge_envelope(detail: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": str(detail.get("event") or detail.get("type") or "Datafly Event"),
        "source": "datafly.signal",
        "account": ACCOUNT,
        "time": "2026-11-20T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def sqs_record(
    body: str, *, message_id: str | None = None, receive_count: int = 1, queue_arn: str = DEFAULT_QUEUE_ARN
) -> dict[str, Any]:
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"rh-{uuid.uuid4().hex}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now_ms,
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {"Records": [sqs_record(body) for body in bodies]}
