"""The soak's settings: its size, the sandbox's fault mix, the relay's overrides and the kill's timing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from handler.budget import record_budget_seconds

ROOT: Final = Path(__file__).resolve().parents[1]
SRC: Final = ROOT / "src"

DEFAULT_ORDERS: Final = 2000
DEFAULT_SEED: Final = 20261120
DEFAULT_KILLS: Final = 1
INVALID_SHARE: Final = 0.05
DUPLICATE_SHARE: Final = 0.10

# The sandbox's answers, in percent: 70 % normal, 30 % faults.
FAULT_WEIGHTS: Final[Mapping[str, float]] = {
    "ok": 70,
    "500": 4,
    "503": 4,
    "429": 5,
    "timeout": 4,
    "drop_before": 4,
    "drop_after": 4,
    "slow": 5,
}
FAULT_DELAY_SECONDS: Final = 1.0  # a "timeout" answer comes after this, twice the relay's timeout
SLOW_SECONDS: Final = 0.2  # the sandbox's "slow" fault (local/sandbox/faults.py)
# On top of local/stack.py's FAST_OVERRIDES: a short timeout, so a timed-out post costs 0.5 s.
SOAK_OVERRIDES: Final[Mapping[str, str]] = {
    "REFERSION_TIMEOUT_SECONDS": "0.5",
    "RETRY_BASE_DELAY_SECONDS": "1",
    "RETRY_MAX_DELAY_SECONDS": "1",
}

# The killed invocation: its context's remaining time (the in-progress window of its orders; one record
# starts only while its handler.budget remains), how long the sandbox holds half of its posts, and how long
# the kill waits at most, once a post is answered and one held, for every other record of the batch to
# be finished or its post held (well inside the relay's 0.5 s timeout).
KILL_WINDOW_MS: Final = int(record_budget_seconds(0.5) * 1000) + 3000  # the budget at 0.5 s, + 3 s
KILL_HOLD_SECONDS: Final = 2.0
KILL_SETTLE_SECONDS: Final = 0.25
KILL_ATTEMPTS: Final = 6
KILL_QUIET_SECONDS: Final = 0.2  # after the kill: the victim's last connections reach the sandbox's accept
RELEASE_MARGIN_SECONDS: Final = 0.5
UNPACED_MARGIN_SECONDS: Final = 2.0  # AWS phases: after a failed pacing call, on top of the paced delay

PUBLISH_CHUNK: Final = 100  # events per publishing round
LOW_WATER: Final = 50  # publish the next chunk when fewer messages than this are visible
PROGRESS_SECONDS: Final = 15.0

VALID, INVALID, DUPLICATE, NON_ORDER = "valid order", "invalid order", "re-published duplicate", "non-order"
KINDS: Final = (VALID, INVALID, DUPLICATE, NON_ORDER)
# Causes of an accepted post the relay got no answer for, and of the duplicates they lead to.
DROP_AFTER, LATE_TIMEOUT, KILL = "drop_after", "timeout", "kill"
ANSWERED = "answered"
# An AWS fault's duplicate (soak/aws_phases.py): the order's done mark was never written.
DONE_MARK = "done mark not written"
