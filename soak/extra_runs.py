"""The refund run and the confirmations runs as ``python -m soak`` runs them (soak/__main__.py)."""

from __future__ import annotations

from typing import Final, TextIO

from soak.confirmations import ConfirmationsExtra, comparison
from soak.refunds import RefundExtra
from soak.report import report
from soak.run import run_soak

DEFAULT_REFUND_ORDERS: Final = 400
DEFAULT_CONFIRMATION_ORDERS: Final = 300


def run_refunds(orders: int, seed: int, kills: int, timeout: float | None, out: TextIO) -> int:
    print(
        f"\nRefund run (issue 11): {orders} orders, seed {seed}, {kills} kill(s), EnableRefunds=true...",
        file=out,
        flush=True,
    )
    result = run_soak(orders, seed, kills, timeout=timeout, progress=out, extra=RefundExtra())
    print(report(result), file=out, flush=True)
    return 0 if result.passed else 1


def run_confirmations(orders: int, seed: int, kills: int, timeout: float | None, out: TextIO) -> int:
    """The same plan with confirmations on, then off; the difference as a PASS/FAIL line."""
    extras = {}
    passed = True
    for on in (True, False):
        extra = ConfirmationsExtra(on=on)
        print(
            f"\nConfirmations run (issue 12), confirmations {'on' if on else 'off'}: {orders} orders, seed "
            f"{seed}, {kills} kill(s)...",
            file=out,
            flush=True,
        )
        result = run_soak(orders, seed, kills, timeout=timeout, progress=out, extra=extra)
        print(report(result), file=out, flush=True)
        passed = passed and result.passed
        extras[on] = extra
    ok, text = comparison(extras[False], extras[True])
    print(
        f"\nConfirmations off and on, the same plan and faults:\n{'PASS' if ok else 'FAIL'}  {text}", file=out
    )
    return 0 if passed and ok else 1
