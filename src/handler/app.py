"""Lambda entry point: `handler.app.lambda_handler` (SQS batches and EventBridge events)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from handler.observability import logger, metrics
from handler.wiring import current_relay


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return current_relay().handle(event, context)
