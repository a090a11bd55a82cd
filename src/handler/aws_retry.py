"""AWS calls retried until a deadline (CONTRACT §11: a write that follows a post is retried within the
record's time budget, so that an order credited at Refersion is not forgotten)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from handler.order_state import StateUnavailable

T = TypeVar("T")

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_TRANSIENT_ERRORS = (EndpointConnectionError, ReadTimeoutError, ConnectTimeoutError, ConnectionClosedError)
CONDITION_FAILED = "ConditionalCheckFailedException"
_FIRST_DELAY_SECONDS = 0.05
_MAX_DELAY_SECONDS = 1.0


def call_with_retries(
    call: Callable[[], T],
    deadline: float | None,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, again after throttling, 5xx and timeouts with a short jittered backoff, until `deadline`.

    Hand-written: botocore's own retries stop after a count, not at a deadline, and Powertools has no
    such helper. A lost condition is re-raised untouched for the caller to decide (never retried);
    every other failure ends as StateUnavailable, naming only the error code.
    """
    attempt = 0
    while True:
        try:
            return call()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code == CONDITION_FAILED:
                raise
            if code not in RETRYABLE_CODES and status < 500:
                raise StateUnavailable(code) from exc
            cause = code
        except _TRANSIENT_ERRORS as exc:
            cause = type(exc).__name__
        except BotoCoreError as exc:
            raise StateUnavailable(type(exc).__name__) from exc
        delay = min(_MAX_DELAY_SECONDS, _FIRST_DELAY_SECONDS * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
        if deadline is None or monotonic() + delay >= deadline:
            raise StateUnavailable(cause)
        sleep(delay)
        attempt += 1
