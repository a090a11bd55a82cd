"""``python -m soak`` (what ``make soak`` runs): the soak on a local stack, then its report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

import soak
from soak.aws_phases import AWS_PHASES, DEFAULT_PHASE_ORDERS
from soak.extra_runs import DEFAULT_CONFIRMATION_ORDERS, DEFAULT_REFUND_ORDERS, run_confirmations, run_refunds
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
    parser.add_argument(
        "--aws-faults",
        action="store_true",
        help="run the AWS-fault phases instead: the same plan with Secrets Manager, DynamoDB, SQS, then all "
        f"three faulted (--orders defaults to {DEFAULT_PHASE_ORDERS} per phase, no kill)",
    )
    _extra_arguments(parser)
    args = parser.parse_args(argv)
    out = out or sys.stdout
    if args.aws_faults:
        return _aws_phases(args, out)
    everything = not (args.plain or args.refunds or args.confirmations)
    status = 0
    if everything or args.plain:
        status |= _plain(args, out)
    if everything or args.refunds:
        status |= run_refunds(args.refund_orders, args.seed, args.kills, args.timeout, out)
    if everything or args.confirmations:
        status |= run_confirmations(args.confirmation_orders, args.seed, args.kills, args.timeout, out)
    return status


def _extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plain", action="store_true", help="run the plain soak (default: every run)")
    parser.add_argument(
        "--refunds", action="store_true", help="run the refund run (issue 11; default: every run)"
    )
    parser.add_argument(
        "--confirmations",
        action="store_true",
        help="run the confirmations runs, on then off (issue 12; default: every run)",
    )
    parser.add_argument(
        "--refund-orders",
        type=int,
        default=DEFAULT_REFUND_ORDERS,
        help=f"valid orders of the refund run (default {DEFAULT_REFUND_ORDERS})",
    )
    parser.add_argument(
        "--confirmation-orders",
        type=int,
        default=DEFAULT_CONFIRMATION_ORDERS,
        help=f"valid orders of each confirmations run (default {DEFAULT_CONFIRMATION_ORDERS})",
    )


def _plain(args: argparse.Namespace, out: TextIO) -> int:
    print(
        f"Soak: {args.orders} orders, seed {args.seed}, {args.kills} kill(s), on a local stack "
        f"(moto + Refersion sandbox); polling until the queue is drained...",
        file=out,
        flush=True,
    )
    result = run_soak(args.orders, args.seed, args.kills, timeout=args.timeout, progress=out)
    print(report(result), file=out, flush=True)
    return 0 if result.passed else 1


def _aws_phases(args: argparse.Namespace, out: TextIO) -> int:
    orders = args.orders if args.orders != DEFAULT_ORDERS else DEFAULT_PHASE_ORDERS
    kills = args.kills if args.kills != DEFAULT_KILLS else 0
    failed: list[str] = []
    for phase in AWS_PHASES:
        print(f"\nAWS-fault phase {phase.name!r}: {orders} orders, seed {args.seed}...", file=out, flush=True)
        result = run_soak(orders, args.seed, kills, timeout=args.timeout, progress=out, aws_phase=phase)
        print(report(result), file=out, flush=True)
        if not result.passed:
            failed.append(phase.name)
    print(f"\nAWS-fault phases: {'FAILED ' + ', '.join(failed) if failed else 'all PASSED'}", file=out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
