"""The reconciliation report (CONTRACT §10) on seeded data, read through the template's indexes on moto."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

import pytest

from handler.order_state import Confirmation
from handler.order_state_dynamodb import DynamoDBOrderStates
from handler.reconcile import main
from local.aws import LocalAws
from tests.support.confirmation_stack import create_indexed_table
from tests.support.order_state_data import DIGEST, ITEMS

pytestmark = pytest.mark.integration

DAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def deliver(store: DynamoDBOrderStates, order_id: str, at: datetime) -> None:
    store.mark_seen(order_id)
    store.mark_post_began(order_id, at)
    store.mark_delivered(order_id, DIGEST, ITEMS, "USD", at)


def confirm(store: DynamoDBOrderStates, conversion_id: str, order_id: str, at: datetime) -> None:
    store.put_confirmation(Confirmation(conversion_id, order_id, "PENDING", "77", at))


def run(local_aws: LocalAws, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(args), client=local_aws.client("dynamodb"))
    return code, out.getvalue()


def test_the_four_lists_of_a_window(local_aws: LocalAws) -> None:
    # Given a table with the template's indexes and a day of orders
    table = create_indexed_table(local_aws)
    store = DynamoDBOrderStates(local_aws.client("dynamodb"), table)
    deliver(store, "A-confirmed", DAY)
    confirm(store, "c-1", "A-confirmed", DAY + timedelta(minutes=2))
    deliver(store, "B-unreferred", DAY + timedelta(hours=1))
    deliver(store, "C-double", DAY + timedelta(hours=2))
    confirm(store, "c-2", "C-double", DAY + timedelta(hours=2, minutes=1))
    confirm(store, "c-3", "C-double", DAY + timedelta(hours=3))
    confirm(store, "c-4", "D-pixel", DAY + timedelta(hours=4))  # never delivered by the relay
    # And a late confirmation, the next day, of an order delivered just before midnight
    deliver(store, "E-late", DAY.replace(hour=23, minute=59))
    confirm(store, "c-5", "E-late", DAY + timedelta(days=1, hours=1))
    # And orders outside the window
    deliver(store, "F-before", DAY - timedelta(days=3))
    confirm(store, "c-6", "G-pixel-after", DAY + timedelta(days=3))
    # When the operator reconciles that day
    code, out = run(local_aws, "--from", "2026-11-20", "--to", "2026-11-20", "--table", table, "--json")
    assert code == 0
    report = json.loads(out)

    def orders(name: str) -> list[tuple[str, list[str]]]:
        return [(line["order_id"], line["conversion_ids"]) for line in report[name]]

    # Then each order is where it belongs
    assert orders("delivered_and_confirmed") == [
        ("A-confirmed", ["c-1"]),
        ("C-double", ["c-2", "c-3"]),
        ("E-late", ["c-5"]),
    ]
    assert orders("delivered_never_confirmed") == [("B-unreferred", [])]
    assert [(line["order_id"], line["deny"]) for line in report["confirmed_more_than_once"]] == [
        ("C-double", ["c-3"])
    ]
    assert orders("confirmed_never_delivered") == [("D-pixel", ["c-4"])]


def test_the_text_report_names_the_ids_to_deny(local_aws: LocalAws) -> None:
    table = create_indexed_table(local_aws)
    store = DynamoDBOrderStates(local_aws.client("dynamodb"), table)
    deliver(store, "C-double", DAY)
    confirm(store, "c-2", "C-double", DAY)
    confirm(store, "c-3", "C-double", DAY + timedelta(seconds=5))
    code, out = run(local_aws, "--from", "2026-11-19", "--to", "2026-11-21", "--table", table)
    assert code == 0
    assert "Confirmed more than once: double credits, deny the extra conversion ids: 1" in out
    assert "order C-double  delivered 2026-11-20T09:00:00.000000Z  conversions c-2, c-3  deny c-3" in out


def test_reconcile_writes_nothing_and_never_scans(local_aws: LocalAws) -> None:
    # Given a seeded table, and a client that records every operation it is asked for
    table = create_indexed_table(local_aws)
    store = DynamoDBOrderStates(local_aws.client("dynamodb"), table)
    deliver(store, "A", DAY)
    client = local_aws.client("dynamodb")
    operations: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: operations.append(model.name))
    before = client.scan(TableName=table)["Items"]
    operations.clear()
    # When reconciling a week
    code = main(["--from", "2026-11-17", "--to", "2026-11-23", "--table", table], client=client)
    # Then only Query was called, and the table is unchanged
    assert code == 0
    assert set(operations) == {"Query"}
    assert client.scan(TableName=table)["Items"] == before


def test_a_window_ending_before_it_starts_is_refused(local_aws: LocalAws) -> None:
    code, _ = run(local_aws, "--from", "2026-11-20", "--to", "2026-11-19", "--table", "t")
    assert code == 2
