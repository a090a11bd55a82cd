"""`make reconcile`: the reconciliation report (handler.reconcile) on a local stack with seeded orders.

Starts the local stack (template.yaml's table, with its reconciliation indexes, on moto), records a few
deliveries and confirmations in the order state (one confirmed, one never confirmed, one confirmed
twice, one confirmed but never delivered), then prints the report for yesterday and today.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from handler.order_state import Confirmation, ItemLine
from handler.order_state_dynamodb import DynamoDBOrderStates
from handler.reconcile import main
from local.stack import LocalStack

_ITEMS = (ItemLine("PROD_A", Decimal("5.50"), 2),)


def seed(store: DynamoDBOrderStates, now: datetime) -> None:
    for n, order_id in enumerate(("DEMO-1001", "DEMO-1002", "DEMO-1003")):
        at = now - timedelta(minutes=30 - n)
        store.mark_seen(order_id)
        store.mark_post_began(order_id, at)
        store.mark_delivered(order_id, "0" * 64, _ITEMS, "USD", at)
    confirmations = [
        ("conv-1", "DEMO-1001"),
        ("conv-2", "DEMO-1003"),
        ("conv-3", "DEMO-1003"),
        ("conv-4", "PIXEL-77"),
    ]
    for n, (conversion_id, order_id) in enumerate(confirmations):
        store.put_confirmation(
            Confirmation(conversion_id, order_id, "PENDING", "4242", now - timedelta(minutes=20 - n))
        )


def run() -> int:
    now = datetime.now(UTC)
    with LocalStack() as stack:
        table = stack.resources.table_name
        seed(DynamoDBOrderStates(stack.aws.client("dynamodb"), table), now)
        # From yesterday: just after midnight UTC the seeded deliveries are on the day before.
        first, last = (now - timedelta(days=1)).date().isoformat(), now.date().isoformat()
        return main(["--from", first, "--to", last, "--table", table], client=stack.aws.client("dynamodb"))


if __name__ == "__main__":
    raise SystemExit(run())
