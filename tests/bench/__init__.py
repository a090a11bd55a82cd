"""Performance benchmark of the relay: `python -m tests.bench.bench_relay` (see docs/PERFORMANCE.md).

Nothing here is a pytest test: the modules print figures, they do not assert on timings.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if str(ROOT / "src") not in sys.path:
    # The Lambda code root (CodeUri: src/), as pytest's `pythonpath` setting provides it to the tests.
    sys.path.insert(0, str(ROOT / "src"))
