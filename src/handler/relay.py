"""The relay's logic: one inbound record to one outcome, and a whole invocation to its response."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

from handler.batch import map_records, partial_batch_response
from handler.budget import AWS_CALL_SECONDS, AWS_CALLS_AFTER_THE_RECORDS, budget_fits_invocation
from handler.config import Settings
from handler.decision import NotPosted, RefundRequest, decide
from handler.delivery import Deliverer, Delivery
from handler.idempotency import OrderLedger
from handler.observability import logger, report_outcome
from handler.order_memory import RememberingDeliverer
from handler.outcomes import Outcome, RecordKind, RecordResult
from handler.quarantine import Quarantine, QuarantineError
from handler.triggers import InboundRecord, UnsupportedTrigger, is_eventbridge_event, is_sqs_batch
from mapping import RefersionOrder

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from handler.order_state import OrderStates
    from handler.pacing import RetryPacer


# What must still fit in a record's budget after its order-state writes: Powertools' done-mark, the
# quarantine send, and the batch's pacing call once the records are done (handler.budget).
_AWS_CALLS_AFTER_THE_ORDER_STATE = 2 + AWS_CALLS_AFTER_THE_RECORDS


class RetryLater(Exception):
    """A record (or an EventBridge event) that must come back; its message is the reason."""


@dataclass(frozen=True)
class Deadline:
    """The one place of the record budget: records start only while the invocation has time to finish
    them (CONTRACT §6), and a started record's writes after its post are retried until its own deadline."""

    context: LambdaContext
    budget_ms: float

    def allows_start(self) -> bool:
        return self.context.get_remaining_time_in_millis() > self.budget_ms

    def for_record_starting_now(self) -> float:
        """The time.monotonic() value until which a record started now may retry its order-state writes:
        its budget, less the AWS calls that still follow them."""
        reserve = _AWS_CALLS_AFTER_THE_ORDER_STATE * AWS_CALL_SECONDS
        return time.monotonic() + self.budget_ms / 1000 - reserve


class RefundPath(Protocol):
    """The refund and cancellation path (CONTRACT §9; handler.refunds.RefundRelay)."""

    def relay(self, inbound: InboundRecord, event: dict[str, Any], deadline: float) -> RecordResult: ...

    def close(self) -> None: ...


class Relay:
    def __init__(
        self,
        *,
        settings: Settings,
        deliverer: Deliverer,
        quarantine: Quarantine,
        ledger: OrderLedger,
        pacer: RetryPacer,
        executor: ThreadPoolExecutor,
        order_states: OrderStates | None = None,
        refunds: RefundPath | None = None,
    ) -> None:
        self._settings = settings
        self._deliverer = deliverer
        self._quarantine = quarantine
        self._ledger = ledger
        self._pacer = pacer
        self._executor = executor
        # The order state (CONTRACT §11) is kept whenever there is a table, whatever the switches say.
        self._memory = RememberingDeliverer(order_states, deliverer, settings) if order_states else None
        # Refunds need the order state: without a table they stay dropped, as with REFUNDS_ENABLED off.
        self._refunds = refunds if order_states is not None and settings.refunds_enabled else None

    def handle(self, event: Any, context: LambdaContext) -> dict[str, Any]:
        self._ledger.register_context(context)
        deadline = Deadline(context, self._settings.record_budget_seconds * 1000)
        budget_fits_invocation(context.get_remaining_time_in_millis(), self._settings.record_budget_seconds)
        if is_sqs_batch(event):
            return self._handle_sqs_batch(event, deadline)
        if is_eventbridge_event(event):
            return self._handle_eventbridge_event(event, deadline)
        raise UnsupportedTrigger("expected an SQS batch or an EventBridge event")

    def _handle_sqs_batch(self, event: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        def relay_one(record: SqsRecordModel) -> tuple[InboundRecord, RecordResult]:
            inbound = InboundRecord.from_sqs(record)
            return inbound, self.relay_record(inbound, deadline)

        finished = map_records(event["Records"], relay_one, self._executor)
        retries = [(inbound, result) for inbound, result in finished if result.outcome.comes_back]
        self._pacer.pace(retries)
        return partial_batch_response(inbound.record_id for inbound, _ in retries)

    def _handle_eventbridge_event(self, event: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        inbound = InboundRecord.from_eventbridge(event)
        result = self.relay_record(inbound, deadline)
        if result.outcome.comes_back:
            # Lambda's asynchronous retries and the on-failure destination take over (CONTRACT §6).
            raise RetryLater(f"event {inbound.record_id}: {result.reason}")
        return {"outcome": result.outcome.value, "order_id": result.order_id}

    def relay_record(self, inbound: InboundRecord, deadline: Deadline) -> RecordResult:
        """Exactly one outcome per record, reported once, whatever happens."""
        if not deadline.allows_start():
            result = RecordResult(
                inbound.record_id,
                Outcome.RETRY,
                reason="not started: the invocation is close to its timeout",
                started=False,
            )
        else:
            result = self._relay_started(inbound, deadline.for_record_starting_now())
        report_outcome(result)
        return result

    def _relay_started(self, inbound: InboundRecord, deadline: float) -> RecordResult:
        try:
            return self._relay(inbound, deadline)
        except Exception as exc:
            # A defect must not lose the record: it comes back, and the traceback is logged (our own
            # frames and exception types only: the record's data is not in them).
            logger.exception(
                "unexpected error while relaying a record", extra={"record_id": inbound.record_id}
            )
            return RecordResult(
                inbound.record_id, Outcome.RETRY, reason=f"unexpected error ({type(exc).__name__})"
            )

    def _relay(self, inbound: InboundRecord, deadline: float) -> RecordResult:
        decision = decide(inbound, self._settings.consent_category, refunds=self._refunds is not None)
        if isinstance(decision, NotPosted):
            result = decision.result(inbound.record_id)
        elif isinstance(decision, RefundRequest):
            assert self._refunds is not None  # decide() hands refunds on only when there is a path
            result = replace(self._refunds.relay(inbound, decision.event, deadline), kind=RecordKind.REFUND)
        else:
            result = self._deliver(inbound, decision, deadline)
        if result.outcome.quarantined:
            return self._set_aside(inbound, result)
        return result

    def _deliver(self, inbound: InboundRecord, order: RefersionOrder, deadline: float) -> RecordResult:
        body = order.to_json_bytes()
        memory = self._memory

        def post() -> Delivery:
            if memory is None:
                return self._deliverer.deliver(body)
            return memory.deliver(inbound.record_id, order, body, deadline)

        delivery = self._ledger.deliver_once(order.order_id, body, post)
        answer = delivery.answer
        return RecordResult(
            inbound.record_id,
            delivery.outcome,
            reason=delivery.reason,
            order_id=order.order_id,
            cart_id=order.cart_id,
            http_status=answer.status if answer else delivery.http_status,
            latency_ms=answer.latency_ms if answer else None,
            attempts=delivery.attempts,
            retry_after_seconds=answer.retry_after_seconds if answer else None,
            body_logged=order.to_log_dict(),
            wait_seconds=delivery.wait_seconds,
            maybe_received=answer is not None and answer.unanswered,
        )

    def _set_aside(self, inbound: InboundRecord, result: RecordResult) -> RecordResult:
        """Quarantine an invalid or rejected record; if that fails, it must come back instead."""
        try:
            self._quarantine.send(inbound.raw_body, result)
        except QuarantineError as exc:
            logger.error(
                "quarantine failed; the record will be retried", extra={"record_id": inbound.record_id}
            )
            return replace(
                result, outcome=Outcome.RETRY, reason=f"{result.outcome.value}: {result.reason}; {exc}"
            )
        return result
