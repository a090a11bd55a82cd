"""The idempotency ledger is fully configured before concurrent first records use it (CONTRACT §6)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest

from handler.config import IDEMPOTENCY_WINDOW_SECONDS
from handler.delivery import Delivery
from handler.idempotency import KEY_PREFIX, DynamoDBOrderLedger
from handler.outcomes import Outcome
from local.aws import LocalAws, RelayResources

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    # Threads switch after (almost) every bytecode: races of a cold start show up at once.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_concurrent_first_records_of_cold_starts_are_each_posted_and_remembered_under_the_fixed_key(
    local_aws: LocalAws, resources: RelayResources, tiny_switch_interval: None
) -> None:
    dynamodb = local_aws.client("dynamodb")
    posted: list[str] = []
    rounds, threads = 12, 24
    for cold_start in range(rounds):
        # Given a fresh ledger (a cold start) and many first records released at the same instant
        ledger = DynamoDBOrderLedger(dynamodb, resources.table_name)
        start = threading.Barrier(threads)

        def first_record(
            order_id: str, ledger: DynamoDBOrderLedger = ledger, start: threading.Barrier = start
        ) -> None:
            def post() -> Delivery:
                posted.append(order_id)
                return Delivery(Outcome.DELIVERED)

            start.wait()
            ledger.deliver_once(order_id, b"{}", post)

        workers = [
            threading.Thread(target=first_record, args=(f"COLD-{cold_start}-{i}",)) for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    # Then every order was posted (none taken for another's duplicate), and each is remembered under
    # the relay's fixed key prefix for the whole 14-day window
    assert len(set(posted)) == rounds * threads
    items = dynamodb.scan(TableName=resources.table_name)["Items"]
    assert len(items) == rounds * threads
    assert all(item["id"]["S"].startswith(f"{KEY_PREFIX}#") for item in items)
    soonest = min(int(item["expiration"]["N"]) for item in items)
    assert soonest > time.time() + IDEMPOTENCY_WINDOW_SECONDS - 60
