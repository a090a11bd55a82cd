"""What Lambda's SQS event source mapping does, run locally against the moto queue.

Per invocation, as the managed poller does (AWS Lambda developer guide, "Using Lambda with Amazon SQS"):

* long-polls the queue (ReceiveMessage, MaxNumberOfMessages = batch size, all system and message
  attributes), then keeps gathering until the batch is full or the batching window has passed;
* builds the SQS event Lambda builds (``Records`` with messageId, receiptHandle, body, attributes,
  lower-camel messageAttributes, md5OfBody, eventSource, eventSourceARN, awsRegion) and invokes the
  handler with a context whose deadline is the function timeout;
* with ReportBatchItemFailures: deletes every message not listed in ``batchItemFailures``; a raised
  exception, an invocation longer than the function timeout, or a malformed response fails the whole
  batch (nothing deleted). Without it, only a normal return deletes the batch.

Nothing here moves a message to the dead-letter queue: messages that are not deleted become visible
again (after the handler's ChangeMessageVisibility, or the queue's visibility timeout), their receive
count climbs on each ReceiveMessage, and the queue's own redrive policy (moto enforces it on receive)
moves them once the count has reached maxReceiveCount.

One invocation at a time: the relay keeps process-wide state (its cached components, Powertools' logger
and metrics), like one Lambda execution environment, which never runs two invocations at once.

While an invocation runs, the relay's log stream is captured (one JSON line per record, as CloudWatch
Logs would receive it) and Powertools' EMF metrics are taken off stdout; both are kept on the
`Invocation` record. Capturing stdout swaps ``sys.stdout`` for the whole process during the
invocation, so other threads should not print meanwhile.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self, TextIO

from local.aws import REGION
from local.lambda_shapes import FakeLambdaContext
from local.sqs_invocation import (
    Invocation,
    RecordReport,
    batch_item_failures,
    captured_output,
    lambda_record,
    outcome_lines,
    record_report,
)

__all__ = ["EventSourceMapping", "Invocation", "QueueDepth", "QueueNotDrained", "RecordReport"]

Handler = Callable[[dict[str, Any], Any], Any]

_DELETE_BATCH_LIMIT: Final = 10
_MAX_WAIT_SECONDS: Final = 20  # ReceiveMessage's ceiling for WaitTimeSeconds
_GATHER_PAUSE_SECONDS: Final = 0.05

_log = logging.getLogger(__name__)


class QueueNotDrained(TimeoutError):
    """run_until_drained() ran out of time with messages still on the queue."""


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


class EventSourceMapping:
    """Polls one queue and invokes the handler with what it receives; see the module docstring."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        *,
        batch_size: int,
        batching_window_seconds: float,
        function_timeout_seconds: float,
        report_batch_item_failures: bool = True,
        handler: Handler | None = None,
        region: str = REGION,
        capture_output: bool = True,
        log_stream: TextIO | None = None,
    ) -> None:
        """``handler`` defaults to handler.app.lambda_handler (imported when first invoked).

        ``log_stream``: where the captured log lines go after each invocation (default: wherever the
        relay's logger was writing). EMF lines are only kept on the Invocation records.
        """
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be in 1..10000")
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = batch_size
        self.batching_window_seconds = batching_window_seconds
        self.function_timeout_seconds = function_timeout_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.region = region
        self._handler = handler
        self._capture_output = capture_output
        self._log_stream = log_stream
        self._lock = threading.Lock()
        self._invocations: list[Invocation] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None

    # ---------------------------------------------------------------- observations

    @property
    def invocations(self) -> list[Invocation]:
        with self._lock:
            return list(self._invocations)

    def records(self) -> list[RecordReport]:
        """Every record of every invocation, in order (a retried message appears once per receive)."""
        return [record for invocation in self.invocations for record in invocation.records]

    def depth(self) -> QueueDepth:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return QueueDepth(
            visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def is_drained(self) -> bool:
        """No message waiting, in flight (including backing off after a retry), or delayed."""
        return self.depth().total == 0

    # ---------------------------------------------------------------- explicit loop

    def poll_once(self, wait_seconds: float | None = None) -> Invocation | None:
        """Gather one batch and invoke the handler with it; None when the queue gave nothing."""
        messages = self._gather(self._poll_wait() if wait_seconds is None else wait_seconds)
        if not messages:
            return None
        return self._invoke(messages)

    def receive_batch(self, wait_seconds: float | None = None) -> list[dict[str, Any]]:
        """Gather one batch as poll_once() does, without invoking anything: for a caller that runs the
        handler itself (in another process, say). The messages stay in flight until the caller deletes
        them or changes their visibility; ``lambda_event(messages)`` is the event Lambda would pass."""
        return self._gather(self._poll_wait() if wait_seconds is None else wait_seconds)

    def run_until_drained(self, timeout: float) -> list[Invocation]:
        """Poll and invoke until the queue is drained; the invocations this call made.

        Raises QueueNotDrained when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        first = len(self.invocations)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QueueNotDrained(f"queue not drained after {timeout:g} s: {self.depth()}")
            self.poll_once(min(self._poll_wait(), max(0.0, remaining)))
            if self.is_drained():
                return self.invocations[first:]

    # ---------------------------------------------------------------- background thread

    def start(self) -> Self:
        """Poll in a background thread until stop(), as the managed poller does."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="event-source-mapping", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling; an invocation under way finishes first."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the event source mapping thread did not stop")
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise RuntimeError("the event source mapping thread failed") from error

    def wait_until_drained(self, timeout: float) -> bool:
        """With start(): True once the queue is drained, False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread_error is not None:
                return False
            if self.is_drained():
                return True
            time.sleep(0.2)
        return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # Short waits so that stop() is honoured within about a second.
                self.poll_once(wait_seconds=1)
        except BaseException as exc:  # kept for stop() and wait_until_drained()
            _log.exception("event source mapping thread failed")
            self._thread_error = exc

    # ---------------------------------------------------------------- receiving

    def _poll_wait(self) -> int:
        """Long poll for up to the batching window (at least 1 s: a poller never spins on an empty queue)."""
        return max(1, min(_MAX_WAIT_SECONDS, math.ceil(self.batching_window_seconds)))

    def _receive(self, count: int, wait_seconds: float) -> list[dict[str, Any]]:
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, 10),
            WaitTimeSeconds=int(wait_seconds),
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def _gather(self, wait_seconds: float) -> list[dict[str, Any]]:
        """First messages by long poll, then more until the batch is full or the window has passed."""
        messages = self._receive(self.batch_size, wait_seconds)
        if not messages:
            return []
        window_ends = time.monotonic() + self.batching_window_seconds
        while len(messages) < self.batch_size and time.monotonic() < window_ends:
            more = self._receive(self.batch_size - len(messages), 0)
            if more:
                messages.extend(more)
            else:
                time.sleep(min(_GATHER_PAUSE_SECONDS, max(0.0, window_ends - time.monotonic())))
        return messages

    # ---------------------------------------------------------------- invoking

    def lambda_event(self, messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The event Lambda passes for these messages."""
        return {"Records": [lambda_record(message, self.queue_arn, self.region) for message in messages]}

    def _invoke(self, messages: list[dict[str, Any]]) -> Invocation:
        event = self.lambda_event(messages)
        context = FakeLambdaContext(remaining_ms=self.function_timeout_seconds * 1000)
        handler = self._handler or _default_handler()
        started_at, started = time.time(), time.monotonic()
        response: Any = None
        error: str | None = None
        with captured_output(capture=self._capture_output, log_stream=self._log_stream) as captured:
            try:
                response = handler(event, context)
            except Exception as exc:
                error = f"handler raised {type(exc).__name__}: {exc}"
        duration = time.monotonic() - started
        if error is None and duration > self.function_timeout_seconds:
            limit = self.function_timeout_seconds
            error = f"timed out: ran {duration:.1f} s, the function timeout is {limit:g} s"

        ids = [str(message["MessageId"]) for message in messages]
        failed: list[str] = []
        if error is None and self.report_batch_item_failures:
            failed, problem = batch_item_failures(response, ids)
            error = problem
        keep = set(ids) if error is not None else set(failed)
        to_delete = [message for message in messages if message["MessageId"] not in keep]
        delete_failures = self._delete(to_delete)

        outcomes = outcome_lines(captured.logs)
        records = tuple(
            record_report(
                message, acknowledged=message["MessageId"] not in keep, outcome=outcomes.get(message_id)
            )
            for message, message_id in zip(messages, ids, strict=True)
        )
        with self._lock:
            invocation = Invocation(
                number=len(self._invocations) + 1,
                request_id=context.aws_request_id,
                started_at=started_at,
                duration_seconds=duration,
                records=records,
                response=response,
                error=error,
                failed_ids=tuple(failed),
                logs=tuple(captured.logs),
                metrics=tuple(captured.metrics),
                delete_failures=tuple(delete_failures),
            )
            self._invocations.append(invocation)
        return invocation

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> list[str]:
        failures: list[str] = []
        for start in range(0, len(messages), _DELETE_BATCH_LIMIT):
            chunk = messages[start : start + _DELETE_BATCH_LIMIT]
            answer = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            failures.extend(chunk[int(f["Id"])]["MessageId"] for f in answer.get("Failed", []))
        return failures


def _default_handler() -> Handler:
    from handler.app import lambda_handler

    return lambda_handler
