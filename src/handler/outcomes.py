"""The outcome table of CONTRACT §5: what each record ends as, and how an HTTP answer is classified."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"
    INVALID = "invalid"
    DROPPED = "dropped"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    # Reported for redelivery like a retry, but expected (a refund waiting for its order, an unanswered
    # post waiting for Refersion's confirmation): logged and counted apart, so retry alarms stay quiet.
    WAITING = "waiting"

    @property
    def quarantined(self) -> bool:
        """Invalid and rejected records go to the dead-letter queue; nothing else does."""
        return self in (Outcome.INVALID, Outcome.REJECTED)

    @property
    def comes_back(self) -> bool:
        """Retry and waiting records are handed back to SQS (or raised on the EventBridge-direct path)."""
        return self in (Outcome.RETRY, Outcome.WAITING)


class RecordKind(enum.StrEnum):
    """What a record asked for: an order to credit, or a refund/cancellation to take back."""

    ORDER = "order"
    REFUND = "refund"


class HttpVerdict(enum.Enum):
    """What an HTTP answer from Refersion means for the record."""

    DELIVERED = "delivered"
    KEYS_REFUSED = "keys_refused"  # 401/403: refresh the key pair and try once more
    RETRY = "retry"
    REJECTED = "rejected"


_RETRYABLE_CLIENT_ERRORS = frozenset({408, 425, 429})


def classify_status(status: int) -> HttpVerdict:
    """CONTRACT §5: 2xx delivered; 401/403 keys; 408/425/429/5xx retry; every other 4xx rejected."""
    if 200 <= status < 300:
        return HttpVerdict.DELIVERED
    if status in (401, 403):
        return HttpVerdict.KEYS_REFUSED
    if status in _RETRYABLE_CLIENT_ERRORS or status >= 500:
        return HttpVerdict.RETRY
    if 400 <= status < 500:
        return HttpVerdict.REJECTED
    # 1xx/3xx are not answers a webhook gives (redirects are not followed): safer to try again later.
    return HttpVerdict.RETRY


@dataclass(frozen=True)
class RecordResult:
    """Everything known about one record once it has an outcome; one log line and one metric each."""

    record_id: str
    outcome: Outcome
    reason: str = ""
    order_id: str | None = None
    cart_id: str | None = None
    http_status: int | None = None
    latency_ms: float | None = None
    attempts: int = 0
    retry_after_seconds: float | None = None
    body_logged: dict[str, Any] | None = None
    # False only for a retry never attempted because the invocation was close to its timeout: it is
    # paced with the base delay, not pushed further out.
    kind: RecordKind = RecordKind.ORDER
    # For waiting records: seconds until the wait may be over (the pacer holds the record that long).
    wait_seconds: float | None = None
    started: bool = True
    # A post with no answer may still have been credited by Refersion: the retry could double it.
    maybe_received: bool = False
    # Counters of their own besides the outcome's (e.g. refund_skipped_no_conversion), one count each.
    extra_metrics: tuple[str, ...] = ()
