"""Each order credited once: Powertools idempotency on DynamoDB, keyed on the order id (CONTRACT §6)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from handler.config import IDEMPOTENCY_WINDOW_SECONDS
from handler.delivery import Delivery
from handler.observability import DYNAMODB, count_dependency_failure, logger
from handler.outcomes import Outcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# A fixed prefix instead of Powertools' default (module and function name), so that a refactor
# never makes every order look new.
KEY_PREFIX = "refersion-order"


class OrderLedger(Protocol):
    def deliver_once(self, order_id: str, body: bytes, deliver: Callable[[], Delivery]) -> Delivery: ...

    def register_context(self, context: LambdaContext) -> None: ...


class NoLedger:
    """IDEMPOTENCY_TABLE_NAME unset: every record is posted (SQS's at-least-once shows through)."""

    def deliver_once(self, order_id: str, body: bytes, deliver: Callable[[], Delivery]) -> Delivery:
        return deliver()

    def register_context(self, context: LambdaContext) -> None:
        return None


class _NotDelivered(Exception):
    """Raised inside the idempotent call so that Powertools forgets the order: only a 2xx is remembered."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(delivery.outcome.value)
        self.delivery = delivery


class DynamoDBOrderLedger:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._config = IdempotencyConfig(
            event_key_jmespath="order_id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS,
        )
        store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        # Configured here, once, before any worker thread: Powertools configures the store lazily on
        # each call, and its configure() marks itself done before it copies the settings in, so
        # concurrent first records at a cold start could run with half a configuration. Called with
        # the arguments its decorator would pass (base.IdempotencyHandler); theirs is then a no-op.
        store.configure(
            config=self._config,
            function_name=f"{_deliver_and_remember.__module__}.{_deliver_and_remember.__qualname__}",
            key_prefix=KEY_PREFIX,
        )
        self._deliver_idempotently = idempotent_function(
            _deliver_and_remember,
            data_keyword_argument="order",
            persistence_store=store,
            config=self._config,
            key_prefix=KEY_PREFIX,
        )

    def register_context(self, context: LambdaContext) -> None:
        # An in-flight order whose invocation dies becomes retryable once this invocation's time is up.
        self._config.register_lambda_context(context)

    def deliver_once(self, order_id: str, body: bytes, deliver: Callable[[], Delivery]) -> Delivery:
        ran: list[Delivery] = []

        def tracked() -> Delivery:
            ran.append(deliver())
            return ran[0]

        try:
            saved = self._deliver_idempotently(
                order={"order_id": order_id}, deliver=tracked, body_digest=body_digest(body)
            )
        except _NotDelivered as exc:
            return exc.delivery
        except IdempotencyAlreadyInProgressError:
            return Delivery(Outcome.RETRY, reason="another invocation is delivering this order right now")
        except IdempotencyPersistenceLayerError as exc:
            count_dependency_failure(DYNAMODB, "idempotency_save" if ran else "idempotency_lock")
            return _after_ledger_failure(ran, exc)
        if ran:
            return ran[0]
        return _duplicate(saved if isinstance(saved, dict) else {}, body_digest(body))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _duplicate(saved: dict[str, Any], digest: str) -> Delivery:
    return duplicate_delivery(str(saved.get("delivered_at", "?")), saved.get("body_sha256") in (None, digest))


def duplicate_delivery(delivered_at: str, same_body: bool, *, source: str = "") -> Delivery:
    """The duplicate outcome of an order delivered before (from Powertools' record or the order state)."""
    reason = f"order already delivered at {delivered_at}{source}"
    if not same_body:
        # Same order id, other amounts or items: Refersion keeps what it was sent first, so say so.
        reason += " with a different body (this copy's changes were not sent)"
        logger.warning("duplicate order with a different body", extra={"delivered_at": delivered_at})
    return Delivery(Outcome.DUPLICATE, reason=reason)


def _deliver_and_remember(
    order: dict[str, Any], deliver: Callable[[], Delivery], body_digest: str
) -> dict[str, Any]:
    delivery = deliver()
    if delivery.outcome is not Outcome.DELIVERED:
        raise _NotDelivered(delivery)
    status = delivery.answer.status if delivery.answer else None
    delivered_at = datetime.now(UTC).isoformat(timespec="seconds")
    return {"status": status, "delivered_at": delivered_at, "body_sha256": body_digest}


def _after_ledger_failure(ran: list[Delivery], exc: IdempotencyPersistenceLayerError) -> Delivery:
    cause = type(exc.__cause__).__name__ if exc.__cause__ else "error"
    if ran and ran[0].outcome is Outcome.DELIVERED:
        # Refersion has the order: acknowledging it is right; posting it again would credit it twice.
        logger.warning("order delivered but not recorded in the idempotency table", extra={"cause": cause})
        return ran[0]
    if ran:
        return ran[0]
    return Delivery(Outcome.RETRY, reason=f"idempotency table unavailable ({cause})")
