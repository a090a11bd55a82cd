"""Powertools' batch processor with the records of a batch handled concurrently.

Why a thread pool over Powertools' AsyncBatchProcessor: urllib3 is synchronous, so an async record
handler would only hand each post to a thread anyway (asyncio.to_thread), adding an event loop per
invocation and a second concurrency limit to keep in step with the connection pool. A small
long-lived pool of threads, as many as the urllib3 pool has connections, gives one round trip per
batch with nothing else to tune. Everything else (record parsing with the parser model, success and
failure bookkeeping, the batchItemFailures response) stays Powertools'.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel


class ConcurrentBatchProcessor(BatchProcessor):
    def __init__(self, executor: ThreadPoolExecutor) -> None:
        # raise_on_entire_batch_failure=False: when every record must come back, say so record by
        # record (SPEC §6) instead of failing the invocation, which would also count as a function error.
        super().__init__(event_type=EventType.SQS, model=SqsRecordModel, raise_on_entire_batch_failure=False)
        self._executor = executor

    def process(self) -> list[tuple[Any, ...]]:
        # map() starts records in batch order, so "not yet started" near the deadline means the tail.
        return list(self._executor.map(self._process_record, self.records))
