"""The records of an SQS batch, handled concurrently, and the partial-batch response (CONTRACT §6).

Written here rather than with Powertools' BatchProcessor: importing aws_lambda_powertools.utilities.batch
also loads asyncio, multiprocessing and every Powertools event data class, measured at 33-49 ms of a
~420 ms cold start (docs/PERFORMANCE.md), a third of the gap to the floor, for what is here a few lines.
Records are still parsed with Powertools' parser model (SqsRecordModel).

Why a thread pool over Powertools' AsyncBatchProcessor: urllib3 is synchronous, so an async record
handler would only hand each post to a thread anyway (asyncio.to_thread), adding an event loop per
invocation and a second concurrency limit to keep in step with the connection pool. A small
long-lived pool of threads, as many as the urllib3 pool has connections, gives one round trip per
batch with nothing else to tune.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

T = TypeVar("T")


def map_records(
    records: list[dict[str, Any]], handle: Callable[[SqsRecordModel], T], executor: ThreadPoolExecutor
) -> list[T]:
    """Handle every record on the pool, in batch order (so near the deadline the unstarted ones are the tail).

    A record Lambda could not have sent (no messageId, no body) fails the whole invocation: it cannot be
    reported on its own, and failing everything is the one answer that loses nothing.
    """
    parsed = [SqsRecordModel.model_validate(record) for record in records]
    return list(executor.map(handle, parsed))


def partial_batch_response(failed_message_ids: Iterable[str]) -> dict[str, Any]:
    """Exactly the records SQS must deliver again; every other record of the batch is acknowledged."""
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed_message_ids]}
