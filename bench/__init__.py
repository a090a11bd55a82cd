"""Performance benchmark of the relay: `python -m bench.bench_relay` (see docs/PERFORMANCE.md).

Nothing here is a pytest test: the modules print figures, they do not assert on timings.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
