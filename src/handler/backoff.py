"""Retry pacing: how long a record reported for retry stays invisible before its next attempt."""

from __future__ import annotations

import math

from handler.config import MAX_VISIBILITY_SECONDS

_GROWTH = 4  # 30 s, 2 min, 8 min, 32 min, then the cap: an outage is not hammered, attempts span hours


def retry_delay_seconds(
    receive_count: int, base_seconds: int, max_seconds: int, retry_after_seconds: float | None = None
) -> int:
    """Exponential in the receive count, capped; a longer Retry-After from Refersion wins."""
    exponent = max(receive_count, 1) - 1
    scheduled = min(base_seconds * _GROWTH ** min(exponent, 16), max_seconds)
    return int(min(max(scheduled, _whole_seconds(retry_after_seconds)), MAX_VISIBILITY_SECONDS))


def _whole_seconds(asked: float | None) -> int:
    """Any float to whole seconds SQS accepts: NaN, negatives, None ask nothing; infinity the most."""
    if asked is None or math.isnan(asked) or asked <= 0:
        return 0
    return math.ceil(min(asked, MAX_VISIBILITY_SECONDS))
