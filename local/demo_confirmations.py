"""Issue 12 in the demo: a post that went unanswered, resolved by Refersion's confirmation, never re-posted.

The sandbox processes (credits) the order's post, then drops the connection before answering: the relay
cannot tell whether Refersion counted it (``maybe_received``) and keeps the record (retry). A click was
recorded for the order's cart, so a moment after accepting the post the sandbox sends Refersion's
conversion webhook to the receiver's Function URL (local/confirmations_url.py, the token as the last path
segment), which stores the confirmation in the order state. When the record comes back, the relay finds
the confirmation and ends it delivered, "confirmed by Refersion", without a second post.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

from handler.confirmations import forget_receiver
from handler.order_memory import CONFIRMED
from local.confirmations_url import ConfirmationsUrl
from local.demo_rows import Row
from local.lambda_shapes import load_event
from local.sandbox import PATH, Reply
from local.stack import LocalStack

PARAMETERS: Final[Mapping[str, str]] = {"EnableConfirmations": "true"}  # CONFIRMATIONS_ENABLED=true
# The template waits 600 s for a confirmation before posting again. Here the webhook comes 0.2 s after the
# post and the record back after 1 s, so 5 s is plenty; a confirmation that never came would show as a
# second post (a failed check) within seconds instead of a 10-minute wait.
OVERRIDES: Final[Mapping[str, str]] = {"CONFIRMATION_WAIT_SECONDS": "5"}
WEBHOOK_DELAY_SECONDS: Final = 0.2
ORDER_ID: Final = "20150401103001"
CART_ID: Final = "rfsn_cart_Cf7Dg2Hj5Kl8Mn3Pq6Rs9Tu"


def confirmed_order() -> Row:
    """The seed's example under another order id and cart: the order whose answer is lost."""
    detail: dict[str, Any] = copy.deepcopy(load_event("datafly/seed-order.json"))
    detail["messageId"] = "3b8e6f1a-9c2d-4e7b-8a5f-1d0c9b8a7e61"
    detail["properties"].update(order_id=ORDER_ID, cart_id=CART_ID)
    return Row("answer lost, confirmed", detail, expected="delivered")


class ConfirmationsDemo:
    """The receiver's Function URL, its token secret, and the sandbox scripted for the lost answer."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._token = secrets.token_urlsafe(24)
        self._secret_arn: str | None = None
        self._front: ConfirmationsUrl | None = None
        self._front_url = ""
        self.row = confirmed_order()

    def start(self) -> Row:
        """Store the token, start the front, record the click, script the dropped answer; the row."""
        secretsmanager: Any = self._stack.aws.client("secretsmanager")
        name = f"{self._stack.stack_name}-ConfirmationTokenSecret"
        self._secret_arn = str(secretsmanager.create_secret(Name=name, SecretString=self._token)["ARN"])
        # The receiver's own environment variable (the template's ConfirmationsFunction); the stack
        # restores os.environ when it stops.
        os.environ["CONFIRMATION_TOKEN_SECRET_ID"] = self._secret_arn
        forget_receiver()
        self._front = ConfirmationsUrl().start()
        self._front_url = self._front.url
        sandbox = self._stack.sandbox
        sandbox.webhooks.configure(self._front.url + self._token, delay=WEBHOOK_DELAY_SECONDS)
        sandbox.webhooks.record_click(CART_ID)
        sandbox.script_for(ORDER_ID, Reply(drop="after"))
        return self.row

    def stop(self) -> None:
        if self._front is not None:
            self._front.stop()
            self._front = None
        forget_receiver()
        if self._secret_arn is not None:
            secretsmanager: Any = self._stack.aws.client("secretsmanager")
            secretsmanager.delete_secret(SecretId=self._secret_arn, ForceDeleteWithoutRecovery=True)
            self._secret_arn = None

    def story(self, log_text: str) -> list[str]:
        """What happened to the order, in a few lines (the token never shown); ``log_text``: the
        receiver's log lines are among the relay's (one process), each message "confirmation <outcome>"."""
        posts = self._posts()
        sent = [w for w in self._stack.sandbox.webhooks.sent() if w.order_id == ORDER_ID]
        lines = [
            "\nIssue 12: an unanswered post resolved by its confirmation (EnableConfirmations=true)",
            f"  click recorded for cart {CART_ID}; the sandbox sends Refersion's conversion webhook "
            f"{WEBHOOK_DELAY_SECONDS:g} s after accepting a post, to the receiver's local Function URL "
            f"({self._front_url}<token>)",
        ]
        for n, line in enumerate(self.row.outcomes, start=1):
            doubt = ", maybe received" if line.get("maybe_received") else ""
            lines.append(f"  attempt {n}: {line['outcome']}{doubt} ({line.get('reason') or '-'})")
        for post in posts:
            answered = "no answer: connection dropped" if post.status is None else f"answered {post.status}"
            lines.append(f"  post received by Refersion: accepted={post.accepted}, {answered}")
        stored = _receiver_outcomes(log_text)
        for webhook in sent:
            outcome = stored.get(webhook.conversion_id, "no outcome logged")
            lines.append(
                f"  conversion webhook {webhook.conversion_id} -> the receiver answered {webhook.status} "
                f"({outcome})"
            )
        lines.append(f"  Refersion received {len(posts)} post(s) for order {ORDER_ID}.")
        return lines

    def problems(self) -> list[str]:
        problems: list[str] = []
        posts = self._posts()
        if len(posts) != 1:
            problems.append(f"issue 12: Refersion received {len(posts)} posts for order {ORDER_ID}, not 1")
        outcomes = [str(line["outcome"]) for line in self.row.outcomes]
        if outcomes[:1] != ["retry"] or not self.row.outcomes[0].get("maybe_received"):
            problems.append(f"issue 12: the first attempt was not an unanswered post: {outcomes}")
        if self.row.outcome != "delivered" or CONFIRMED not in self.row.reason:
            problems.append(f"issue 12: order {ORDER_ID} not delivered {CONFIRMED!r}: {self.row.reason}")
        answered = [w.status for w in self._stack.sandbox.webhooks.sent()]
        if answered != [200]:
            problems.append(f"issue 12: the receiver answered the webhooks {answered}, expected one 200")
        return problems

    def _posts(self) -> Sequence[Any]:
        return [r for r in self._stack.sandbox.received() if r.route == PATH and r.order_id == ORDER_ID]


def _receiver_outcomes(log_text: str) -> dict[str, str]:
    """conversion id -> the receiver's outcome, from its JSON log lines."""
    outcomes: dict[str, str] = {}
    for text in log_text.splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and str(line.get("message", "")).startswith("confirmation "):
            outcomes[str(line.get("conversion_id"))] = str(line.get("outcome"))
    return outcomes
