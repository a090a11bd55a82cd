"""Entry point of the conversion webhook receiver: `handler.confirmations.lambda_handler` (CONTRACT §10).

Behind a Lambda Function URL (payload format 2.0); the logic is in confirmation_receiver.py.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import ValidationError

from handler.confirmation_receiver import ConfirmationReceiver, ReceiverSettings
from handler.confirmation_tokens import SecretsManagerTokens
from handler.observability import logger, metrics
from handler.order_state_dynamodb import DynamoDBOrderStates

# Bounded calls: an answer (even a 500) must reach Refersion before the function's timeout.
_SDK_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2})

_lock = threading.Lock()
_receiver: ConfirmationReceiver | None = None


def current_receiver() -> ConfirmationReceiver:
    """Built once per execution environment (clients and the token cache live across invocations)."""
    global _receiver  # noqa: PLW0603 - one receiver per execution environment is the point
    with _lock:
        if _receiver is None:
            try:
                settings = ReceiverSettings.from_env()
            except ValidationError as exc:
                problems = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
                logger.error("the receiver is misconfigured", extra={"problem": problems})
                raise
            # boto3 honours AWS_ENDPOINT_URL, so a local emulator needs no code path of its own.
            session = boto3.session.Session()
            tokens = SecretsManagerTokens(
                session.client("secretsmanager", config=_SDK_CONFIG),
                settings.token_secret_id,
                settings.token_cache_seconds,
            )
            store = DynamoDBOrderStates(
                session.client("dynamodb", config=_SDK_CONFIG),
                settings.table_name,
                record_days=settings.order_record_days,
            )
            _receiver = ConfirmationReceiver(tokens, store)
        return _receiver


def forget_receiver() -> None:
    """Drop the receiver (clients, cached token); the next request rebuilds it. For tests and SnapStart."""
    global _receiver  # noqa: PLW0603
    with _lock:
        _receiver = None


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return current_receiver().handle(event)
