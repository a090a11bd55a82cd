"""Retry pacing on SQS: a record reported for retry stays invisible on an exponential schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from handler.backoff import retry_delay_seconds
from handler.observability import SQS, count_dependency_failure, logger
from handler.outcomes import RecordResult
from handler.triggers import InboundRecord

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

_SQS_BATCH_LIMIT = 10


class RetryPacer(Protocol):
    def pace(self, retries: Sequence[tuple[InboundRecord, RecordResult]]) -> None: ...


class NoPacing:
    """SOURCE_QUEUE_URL unset: records come back after the queue's own visibility timeout."""

    def pace(self, retries: Sequence[tuple[InboundRecord, RecordResult]]) -> None:
        return None


class SqsVisibilityPacer:
    def __init__(self, client: SQSClient, queue_url: str, base_seconds: int, max_seconds: int) -> None:
        self._client = client
        self._queue_url = queue_url
        self._base = base_seconds
        self._max = max_seconds

    def delay_for(self, inbound: InboundRecord, result: RecordResult) -> int:
        if not result.started:
            return self._base  # never attempted: no reason to push it further out
        # A waiting record asks to come back once its wait may be over; the schedule still applies.
        asked = max(result.retry_after_seconds or 0.0, result.wait_seconds or 0.0) or None
        return retry_delay_seconds(inbound.receive_count, self._base, self._max, asked)

    def pace(self, retries: Sequence[tuple[InboundRecord, RecordResult]]) -> None:
        # Pacing is a courtesy: nothing it does may fail the batch response (CONTRACT §6).
        try:
            self._pace(retries)
        except Exception as exc:
            logger.warning("could not pace retries", extra={"cause": type(exc).__name__})

    def _pace(self, retries: Sequence[tuple[InboundRecord, RecordResult]]) -> None:
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {
                "Id": str(i),
                "ReceiptHandle": inbound.receipt_handle,
                "VisibilityTimeout": self.delay_for(inbound, result),
            }
            for i, (inbound, result) in enumerate(retries)
            if inbound.receipt_handle
        ]
        for start in range(0, len(entries), _SQS_BATCH_LIMIT):
            self._change_visibility(entries[start : start + _SQS_BATCH_LIMIT])

    def _change_visibility(self, entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef]) -> None:
        # Pacing is a courtesy to Refersion, not a guarantee: if it fails the record still comes back.
        try:
            answer = self._client.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries)
        except Exception as exc:
            count_dependency_failure(SQS, "ChangeMessageVisibilityBatch")
            logger.warning("could not pace retries", extra={"cause": type(exc).__name__})
            return
        if answer.get("Failed"):
            logger.warning("could not pace some retries", extra={"failed": len(answer["Failed"])})
