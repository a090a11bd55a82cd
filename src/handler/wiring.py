"""Builds the relay from the environment once per execution environment, and forgets it on demand."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from handler.budget import AWS_CONNECT_TIMEOUT_SECONDS, AWS_MAX_ATTEMPTS, AWS_READ_TIMEOUT_SECONDS
from handler.config import ConfigurationError, Settings
from handler.credentials import KeyPairSource, SecretsManagerKeyPairs
from handler.delivery import Deliverer
from handler.idempotency import DynamoDBOrderLedger, NoLedger, OrderLedger
from handler.observability import logger
from handler.order_state import OrderStates
from handler.order_state_dynamodb import DynamoDBOrderStates
from handler.pacing import NoPacing, RetryPacer, SqsVisibilityPacer
from handler.quarantine import SqsQuarantine
from handler.refersion_client import RefersionClient
from handler.relay import RefundPath, Relay

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def _sdk_config(settings: Settings) -> Config:
    # Bounded calls, counted in the record's time budget (handler.budget), so a slow AWS endpoint cannot
    # outlast the invocation; one pooled connection per worker, so concurrent records never wait for one.
    return Config(
        connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS,
        read_timeout=AWS_READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
        max_pool_connections=max(10, settings.max_concurrency),
    )


class _Components:
    """Everything that lives across warm invocations: clients, pools, caches, threads."""

    def __init__(self, settings: Settings) -> None:
        # boto3 honours AWS_ENDPOINT_URL, so a local emulator needs no code path of its own.
        session = boto3.session.Session()
        sdk_config = _sdk_config(settings)
        sqs = session.client("sqs", config=sdk_config)
        self.keys = SecretsManagerKeyPairs(
            session.client("secretsmanager", config=sdk_config),
            settings.secret_id,
            settings.secret_cache_seconds,
        )
        self.client = RefersionClient(settings.endpoint, settings.timeout_seconds, settings.max_concurrency)
        self.executor = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="relay")
        ledger: OrderLedger = NoLedger()
        states: OrderStates | None = None
        if settings.idempotency_table_name:
            dynamodb: DynamoDBClient = session.client("dynamodb", config=sdk_config)
            ledger = DynamoDBOrderLedger(dynamodb, settings.idempotency_table_name)
            states = DynamoDBOrderStates(
                dynamodb, settings.idempotency_table_name, record_days=settings.order_record_days
            )
        pacer: RetryPacer = NoPacing()
        if settings.source_queue_url:
            pacer = SqsVisibilityPacer(
                sqs,
                settings.source_queue_url,
                settings.retry_base_delay_seconds,
                settings.retry_max_delay_seconds,
            )
        self.refunds = _refund_path(settings, self.keys, states)
        self.relay = Relay(
            settings=settings,
            deliverer=Deliverer(self.keys, self.client),
            quarantine=SqsQuarantine(sqs, settings.dead_letter_queue_url),
            ledger=ledger,
            pacer=pacer,
            executor=self.executor,
            order_states=states,
            refunds=self.refunds,
        )

    def close(self) -> None:
        self.client.close()
        if self.refunds is not None:
            self.refunds.close()
        self.keys.clear()
        self.executor.shutdown(wait=False)


def _refund_path(settings: Settings, keys: KeyPairSource, states: OrderStates | None) -> RefundPath | None:
    """CONTRACT §9's path, only when switched on (Settings makes sure the order state is there)."""
    if not settings.refunds_enabled or states is None:
        return None
    # Imported only when refunds are on: a cold start without them does not pay for the module.
    from handler.refunds import build_refund_relay

    return build_refund_relay(settings, keys, states)


_lock = threading.Lock()
_components: _Components | None = None


def current_relay() -> Relay:
    global _components  # noqa: PLW0603 - one relay per execution environment is the point
    with _lock:
        if _components is None:
            _components = _Components(_settings_or_log())
        return _components.relay


def _settings_or_log() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as exc:
        # Every invocation fails until this is fixed; SQS keeps the records and redrives them.
        logger.error("the function is misconfigured; nothing is delivered", extra={"problem": str(exc)})
        raise


def forget_relay(*_: Any) -> None:
    """Drop pooled connections, cached credentials and configuration; the next call rebuilds them.

    Used as the SnapStart restore hook (sockets and secrets must not outlive a snapshot) and by tests
    that change the environment.
    """
    global _components  # noqa: PLW0603
    with _lock:
        if _components is not None:
            _components.close()
        _components = None
