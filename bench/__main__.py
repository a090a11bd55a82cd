"""``python -m bench``: the same as ``python -m bench.bench_relay`` (what ``make bench`` runs)."""

import sys

from bench.bench_relay import main

sys.exit(main())
