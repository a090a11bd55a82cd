"""Lambda's context object, typed as the relay expects it, for unit tests that call the relay directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from local.lambda_shapes import FakeLambdaContext

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


def lambda_context(remaining_ms: float = 60_000) -> LambdaContext:
    """A FakeLambdaContext where the relay's signature wants Powertools' LambdaContext.

    The fake carries every attribute the relay and Powertools read (remaining time, request id,
    function name and ARN, memory), not LambdaContext's class: hence the cast, which changes nothing.
    """
    return cast("LambdaContext", FakeLambdaContext(remaining_ms=remaining_ms))
