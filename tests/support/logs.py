"""The relay's log output captured for a test, and the check that no secret or personal value is in it."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from tests.support.keys import NEVER_LOGGED


@contextmanager
def captured_relay_logs(never_logged: Iterable[str] = NEVER_LOGGED) -> Iterator[io.StringIO]:
    """What the relay's logger writes (JSON lines) while inside; then assert nothing leaked (CONTRACT §7)."""
    from handler.observability import logger

    buffer = io.StringIO()
    stream_handler = logger.registered_handler
    previous = stream_handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        stream_handler.setStream(previous)  # type: ignore[attr-defined]
    leaked = [value for value in never_logged if value in buffer.getvalue()]
    assert not leaked, f"the relay logged a secret or personal value ({len(leaked)} of them)"
