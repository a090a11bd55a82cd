"""Logger and metrics (Powertools), and the one outcome line and counter each record gets (CONTRACT §7)."""

from __future__ import annotations

import os
import threading
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from handler.outcomes import Outcome, RecordKind, RecordResult

SERVICE = "refersion-relay"
NAMESPACE = "RefersionRelay"

# Powertools' own variables win (the template sets them); these defaults keep a bare run meaningful.
_service = os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE
logger = Logger(service=_service)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE, service=_service)

# Records are handled on worker threads and Powertools Metrics keeps a plain dict: serialise additions.
_metrics_lock = threading.Lock()


def outcome_fields(result: RecordResult) -> dict[str, Any]:
    """The structured fields of an outcome line; the body is the masked one, never the one sent."""
    fields: dict[str, Any] = {
        "record_id": result.record_id,
        "outcome": result.outcome.value,
        "kind": result.kind.value,
        "order_id": result.order_id,
        "cart_id": result.cart_id,
        "http_status": result.http_status,
        "latency_ms": None if result.latency_ms is None else round(result.latency_ms, 1),
        "attempts": result.attempts,
    }
    if result.reason:
        fields["reason"] = result.reason
    if result.retry_after_seconds is not None:
        fields["retry_after_seconds"] = result.retry_after_seconds
    if result.body_logged is not None:
        fields["body"] = result.body_logged
    if result.wait_seconds is not None:
        fields["wait_seconds"] = round(result.wait_seconds, 1)
    if not result.started:
        fields["started"] = False
    if result.maybe_received:
        fields["maybe_received"] = True
    if result.extra_metrics:
        fields["counted_as"] = list(result.extra_metrics)
    return {key: value for key, value in fields.items() if value is not None}


def metric_name(result: RecordResult) -> str:
    """Orders keep the outcome's own name (existing dashboards and alarms); refunds count apart."""
    if result.kind is RecordKind.REFUND:
        return f"refund_{result.outcome.value}"
    return result.outcome.value


def report_outcome(result: RecordResult) -> None:
    """One log line and one count per record, plus the delivery latency when a request went out."""
    level = "warning" if result.outcome.quarantined or result.outcome is Outcome.RETRY else "info"
    getattr(logger, level)(f"record {result.outcome.value}", extra=outcome_fields(result))
    with _metrics_lock:
        metrics.add_metric(name=metric_name(result), unit=MetricUnit.Count, value=1)
        for extra in result.extra_metrics:
            metrics.add_metric(name=extra, unit=MetricUnit.Count, value=1)
        if result.latency_ms is not None:
            metrics.add_metric(name="delivery_latency", unit=MetricUnit.Milliseconds, value=result.latency_ms)


# Dependencies whose failures are counted (issue 13): one metric name each, `aws_<dependency>_error`.
SECRETS_MANAGER = "secretsmanager"
DYNAMODB = "dynamodb"
SQS = "sqs"
DELIVERED_NOT_RECORDED = "delivered_not_recorded"


def count_dependency_failure(dependency: str, operation: str) -> None:
    """One count of `aws_<dependency>_error`, twice: with the service dimension only (what an alarm
    watches, like every other metric of the relay) and with an `operation` dimension as well (which call
    failed: GetSecretValue, idempotency_lock, order_state_write, SendMessage, ...)."""
    _count_twice(f"aws_{dependency}_error", "operation", operation)


def count_delivered_not_recorded(cause: str) -> None:
    """An order credited at Refersion whose order-state write failed within the record's budget: a copy of
    it could be posted again. Counted with and without its cause (the store's error code)."""
    _count_twice(DELIVERED_NOT_RECORDED, "cause", cause)


def _count_twice(name: str, dimension: str, value: str) -> None:
    with _metrics_lock:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    # single_metric writes its own EMF line at once, with its own dimension set.
    dimensions = {"service": _service}
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace, default_dimensions=dimensions
    ) as metric:
        metric.add_dimension(name=dimension, value=value[:100] or "-")
