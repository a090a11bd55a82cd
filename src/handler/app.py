"""Lambda entry point: `handler.app.lambda_handler` (SQS batches and EventBridge events)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from handler.observability import logger, metrics
from handler.wiring import current_relay, forget_relay


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return current_relay().handle(event, context)


def _register_snapstart_restore_hook() -> bool:
    """With SnapStart, pooled sockets and a cached key pair must not outlive the snapshot: drop them
    on restore. The runtime hook module exists only inside Lambda's SnapStart-enabled runtimes."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return False
    register_after_restore(forget_relay)
    return True


SNAPSTART_HOOK_REGISTERED = _register_snapstart_restore_hook()
