"""``python -m soak`` (what ``make soak`` runs): the soak on a local stack, then its report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

import soak
from soak.report import report
from soak.run import run_soak
from soak.settings import DEFAULT_KILLS, DEFAULT_ORDERS, DEFAULT_SEED


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=(soak.__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--orders", type=int, default=DEFAULT_ORDERS, help=f"valid orders (default {DEFAULT_ORDERS})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"fault and data seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--kills", type=int, default=DEFAULT_KILLS, help=f"invocations to kill (default {DEFAULT_KILLS})"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to drain the queue before giving up"
    )
    args = parser.parse_args(argv)
    out = out or sys.stdout
    print(
        f"Soak: {args.orders} orders, seed {args.seed}, {args.kills} kill(s), on a local stack "
        f"(moto + Refersion sandbox); polling until the queue is drained...",
        file=out,
        flush=True,
    )
    result = run_soak(args.orders, args.seed, args.kills, timeout=args.timeout, progress=out)
    print(report(result), file=out, flush=True)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
