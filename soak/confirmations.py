"""The confirmations runs (issue 12): the same plan with EnableConfirmations=true, then with it off.

With confirmations on, the receiver (handler.confirmations) runs behind a local Function URL
(local/confirmations_url.py) with its token secret, as the demo wires it (local/demo_confirmations.py).
Most orders' carts get a recorded click, so the sandbox sends Refersion's conversion webhook for them
once it accepts their post: EARLY_DELAY_SECONDS later for most, LATE_DELAY_SECONDS (later than the
relay's CONFIRMATION_WAIT_SECONDS) for a share. UNCLICKED_SHARE of the orders get no click: no affiliate
referred them, no webhook covers them.

A duplicate at the sandbox follows a post processed without an answer (dropped after processing, a late
answer, a kill). With confirmations on, the relay waits for the confirmation before posting such an
order again: a duplicate must fall to an order whose webhook came later than the wait, or that no
webhook covers. The run with confirmations off shows how many the same faults cause without them.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from handler.confirmations import forget_receiver
from handler.order_memory import CONFIRMED
from local.confirmations_url import ConfirmationsUrl
from local.sandbox import PATH
from local.sandbox.webhooks import ConversionWebhooks, conversion_payload
from soak.extras import SoakExtra
from soak.kills import Attempt, Kill
from soak.lines import is_outcome_line
from soak.plan import Planned
from soak.settings import VALID

if TYPE_CHECKING:
    from local.stack import LocalStack
    from soak.accounting import Observed
    from soak.result import SoakResult

WAIT_SECONDS: Final = 5  # CONFIRMATION_WAIT_SECONDS (the template's 600 s, scaled to the soak)
EARLY_DELAY_SECONDS: Final = 0.3
LATE_DELAY_SECONDS: Final = WAIT_SECONDS + 4.0
UNCLICKED_SHARE: Final = 0.15
LATE_SHARE: Final = 0.15  # of the clicked orders
LATE, UNCLICKED, COVERED = "webhook later than the wait", "unclicked (no affiliate)", "webhook in time"
CAUSES: Final = (LATE, UNCLICKED, COVERED)


class _TimedWebhooks(ConversionWebhooks):
    """The sandbox's webhooks with a delay per cart: late carts get theirs after the relay's wait.

    ConversionWebhooks has one delay for all; its scheduling is repeated here with the delay chosen
    per cart (the sandbox is not this package's to change)."""

    def __init__(self, url: str, late_carts: frozenset[str]) -> None:
        super().__init__(url, EARLY_DELAY_SECONDS)
        self._late_carts = late_carts

    def order_accepted(self, body: bytes) -> None:
        order = _json_object(body)
        cart_id, order_id = order.get("cart_id"), order.get("order_id")
        delay = LATE_DELAY_SECONDS if str(cart_id) in self._late_carts else EARLY_DELAY_SECONDS
        with self._lock:
            if self._url is None or cart_id is None or str(cart_id) not in self._clicks or order_id is None:
                return
            payload = conversion_payload(str(next(self._ids)), str(order_id), order)
            timer = threading.Timer(delay, self._send, (self._url, payload))
            timer.daemon = True
            self._timers.add(timer)
        timer.start()


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


class ConfirmationsExtra(SoakExtra):
    """One run, confirmations on or off; the same clicks and delays either way (only used when on)."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.name = f"confirmations {'on' if on else 'off'}"
        self.parameters = {"EnableConfirmations": "true"} if on else {}
        self.overrides = {"CONFIRMATION_WAIT_SECONDS": str(WAIT_SECONDS)} if on else {}
        self.cause_of: dict[str, str] = {}  # order id -> LATE, UNCLICKED or COVERED
        self._token = secrets.token_urlsafe(24)
        self._front: ConfirmationsUrl | None = None
        self._secret_arn: str | None = None
        self._stdout: Any = None
        self.duplicates: Counter[str] = Counter()  # by cause
        self.duplicate_orders: dict[str, int] = {}
        self.confirmed = 0  # records delivered "confirmed by Refersion", nothing posted
        self.waited = 0  # waiting outcomes for a confirmation
        self.webhooks: Counter[str] = Counter()  # by the receiver's answer

    def extend_plan(self, plan: list[Planned], seed: int) -> list[Planned]:
        rng = random.Random(seed + 12)
        for planned in plan:
            if planned.kind == VALID and planned.order_id:
                draw = rng.random()
                unclicked = draw < UNCLICKED_SHARE
                late = not unclicked and draw < UNCLICKED_SHARE + (1 - UNCLICKED_SHARE) * LATE_SHARE
                self.cause_of[planned.order_id] = UNCLICKED if unclicked else LATE if late else COVERED
        return plan

    def started(self, stack: LocalStack, seed: int) -> None:
        if not self.on:
            return
        secretsmanager: Any = stack.aws.client("secretsmanager")
        name = f"{stack.stack_name}-ConfirmationTokenSecret"
        self._secret_arn = str(secretsmanager.create_secret(Name=name, SecretString=self._token)["ARN"])
        # The receiver's own environment variable (the template's ConfirmationsFunction); the stack
        # restores os.environ when it stops.
        os.environ["CONFIRMATION_TOKEN_SECRET_ID"] = self._secret_arn
        forget_receiver()
        # The receiver logs each webhook (JSON lines) in this process: those the poller does not capture
        # would hide the table, as its own would (run.py's _Discard). Put back by observe().
        self._stdout, sys.stdout = sys.stdout, _Discard()
        self._front = ConfirmationsUrl().start()
        late = frozenset(f"cart_{o}" for o, cause in self.cause_of.items() if cause == LATE)
        webhooks = _TimedWebhooks(self._front.url + self._token, late)
        for order_id, cause in self.cause_of.items():
            if cause != UNCLICKED:
                webhooks.record_click(f"cart_{order_id}")  # soak/plan.py: cart_id = cart_<order id>
        stack.sandbox.webhooks = webhooks

    def observe(self, stack: LocalStack, observed: Observed) -> None:
        posts = Counter(
            r.order_id for r in observed.received if r.route == PATH and r.accepted and r.order_id
        )
        self.duplicate_orders = {o: n - 1 for o, n in posts.items() if n > 1}
        for order_id, extra in self.duplicate_orders.items():
            self.duplicates[self.cause_of.get(order_id, COVERED)] += extra
        victims: list[Kill | Attempt] = [*observed.kills, *observed.kill_attempts]
        lines = [line for inv in observed.invocations for line in inv.logs if is_outcome_line(line)]
        lines += [line for victim in victims for line in victim.logs]
        self.confirmed = sum(1 for line in lines if CONFIRMED in str(line.get("reason", "")))
        self.waited = sum(
            1 for line in lines if line["outcome"] == "waiting" and "confirmation" in str(line.get("reason"))
        )
        self.webhooks = Counter(str(w.status) for w in stack.sandbox.webhooks.sent())
        if self._secret_arn is not None:
            secretsmanager: Any = stack.aws.client("secretsmanager")
            secretsmanager.delete_secret(SecretId=self._secret_arn, ForceDeleteWithoutRecovery=True)
            self._secret_arn = None
        self.stopped()

    def stopped(self) -> None:
        if self._front is not None:
            self._front.stop()
            self._front = None
        if self._stdout is not None:
            sys.stdout, self._stdout = self._stdout, None
        forget_receiver()

    def account(self, result: SoakResult) -> None:
        result.extra_lines.extend(self.lines())
        if self.on:
            found = self.duplicates
            result.checks.append(
                (
                    found[COVERED] == 0,
                    f"confirmations on: every duplicate ({sum(found.values())}) is of an order whose webhook "
                    f"came later than the wait ({found[LATE]}) or that no webhook covers "
                    f"({found[UNCLICKED]}); "
                    f"of an order whose webhook came in time: {found[COVERED]}",
                )
            )

    def lines(self) -> list[str]:
        orders = Counter(self.cause_of.values())
        lines = [
            f"  Confirmations {'on' if self.on else 'off'} (issue 12): orders {orders[COVERED]} with a "
            f"webhook {EARLY_DELAY_SECONDS:g} s after acceptance, {orders[LATE]} after "
            f"{LATE_DELAY_SECONDS:g} s (the relay waits {WAIT_SECONDS} s), {orders[UNCLICKED]} unclicked",
            f"    duplicates at the sandbox: {sum(self.duplicates.values())} ("
            + ", ".join(f"{cause} {self.duplicates[cause]}" for cause in CAUSES)
            + ")",
        ]
        if self.on:
            lines.append(
                f"    records delivered {CONFIRMED!r} without a post: {self.confirmed}; waiting outcomes "
                f"for a confirmation: {self.waited}; webhooks by the receiver's answer: "
                + (", ".join(f"{k} {v}" for k, v in sorted(self.webhooks.items())) or "none")
            )
        return lines


def comparison(off: ConfirmationsExtra, on: ConfirmationsExtra) -> tuple[bool, str]:
    """The difference confirmations make, as a PASS/FAIL line."""
    total_off, total_on = sum(off.duplicates.values()), sum(on.duplicates.values())
    return (
        on.duplicates[COVERED] == 0,
        f"duplicates: {total_off} off -> {total_on} on ({on.duplicates[LATE]} webhook later than the wait, "
        f"{on.duplicates[UNCLICKED]} unclicked; {on.duplicates[COVERED]} otherwise)",
    )
