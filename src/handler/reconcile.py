"""Reconciliation report (CONTRACT §10): what the relay delivered against what Refersion confirmed.

    python -m handler.reconcile --from 2026-11-01 --to 2026-11-30 [--table NAME] [--grace-days 1] [--json]

For the orders delivered in the window (UTC days, both ends included) it prints four lists:

1. delivered and confirmed;
2. delivered and never confirmed (most often an order no affiliate referred: Refersion sends no
   conversion webhook for it);
3. confirmed more than once: a double credit; the extra conversion ids are the ones to deny in Refersion;
4. confirmed but never delivered by the relay: a client-side conversion pixel still live.

It reads only through the idempotency table's two indexes (template.yaml: delivered-by-day,
confirmations-by-day), one Query per day and index: never a Scan, never an item read, never a write.
IAM: dynamodb:Query on <table ARN>/index/* (the stack's ReconcileQueryPolicy). Confirmations are read
`grace_days` either side of the window, since Refersion announces a conversion after the delivery (and,
rarely, before the relay recorded it). It covers what the order state still holds (ORDER_RECORD_DAYS).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DELIVERED_INDEX = "delivered-by-day"
CONFIRMATIONS_INDEX = "confirmations-by-day"
MAX_WINDOW_DAYS = 400


@dataclass(frozen=True)
class DeliveredOrder:
    order_id: str
    delivered_at: str
    linked_conversions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ConfirmationRow:
    conversion_id: str
    order_id: str
    received_at: str
    status: str = ""
    affiliate_id: str | None = None


@dataclass(frozen=True)
class ReportLine:
    order_id: str
    delivered_at: str | None
    conversion_ids: tuple[str, ...]  # earliest received first
    deny: tuple[str, ...] = ()  # for a double credit: all but the first


@dataclass
class Report:
    start: date
    end: date
    grace_days: int
    delivered_and_confirmed: list[ReportLine] = field(default_factory=list)
    delivered_never_confirmed: list[ReportLine] = field(default_factory=list)
    confirmed_more_than_once: list[ReportLine] = field(default_factory=list)
    confirmed_never_delivered: list[ReportLine] = field(default_factory=list)


class IndexReader(Protocol):
    def delivered_on(self, day: date) -> Iterable[DeliveredOrder]: ...

    def confirmations_on(self, day: date) -> Iterable[ConfirmationRow]: ...


class DynamoDBIndexReader:
    """Query (only) on the table's two reconciliation indexes, one day per Query, every page."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def delivered_on(self, day: date) -> Iterator[DeliveredOrder]:
        for item in self._query(DELIVERED_INDEX, "delivered_day", day):
            yield DeliveredOrder(
                order_id=item["order_id"]["S"],
                delivered_at=item["delivered_at"]["S"],
                linked_conversions=frozenset(item.get("confirmations", {}).get("SS", ())),
            )

    def confirmations_on(self, day: date) -> Iterator[ConfirmationRow]:
        for item in self._query(CONFIRMATIONS_INDEX, "received_day", day):
            affiliate = item.get("affiliate_id")
            yield ConfirmationRow(
                conversion_id=item["conversion_id"]["S"],
                order_id=item["order_id"]["S"],
                received_at=item["received_at"]["S"],
                status=item.get("status", {}).get("S", ""),
                affiliate_id=None if affiliate is None else affiliate["S"],
            )

    def _query(self, index: str, day_attribute: str, day: date) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=index,
            KeyConditionExpression="#day = :day",
            ExpressionAttributeNames={"#day": day_attribute},
            ExpressionAttributeValues={":day": {"S": day.isoformat()}},
        )
        for page in pages:
            yield from page.get("Items", [])


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def reconcile(reader: IndexReader, start: date, end: date, grace_days: int = 1) -> Report:
    """The four lists for orders delivered from `start` to `end` (UTC days, inclusive)."""
    if end < start:
        raise ValueError("--to is before --from")
    if (end - start).days + 1 > MAX_WINDOW_DAYS:
        raise ValueError(f"the window is longer than {MAX_WINDOW_DAYS} days")
    wide = days(start - timedelta(days=grace_days), end + timedelta(days=grace_days))
    delivered = {order.order_id: order for day in wide for order in reader.delivered_on(day)}
    rows: dict[str, dict[str, ConfirmationRow]] = {}
    for day in wide:
        for row in reader.confirmations_on(day):
            rows.setdefault(row.order_id, {})[row.conversion_id] = row
    report = Report(start, end, grace_days)
    first, last = start.isoformat(), end.isoformat()
    for order in sorted(delivered.values(), key=lambda o: (o.delivered_at, o.order_id)):
        if not first <= order.delivered_at[:10] <= last:
            continue
        ids = _ordered_ids(rows.get(order.order_id, {}), order.linked_conversions)
        line = ReportLine(order.order_id, order.delivered_at, ids, ids[1:])
        (report.delivered_and_confirmed if ids else report.delivered_never_confirmed).append(line)
        if len(ids) > 1:
            report.confirmed_more_than_once.append(line)
    for order_id, found in sorted(
        rows.items(), key=lambda item: min(r.received_at for r in item[1].values())
    ):
        ids = _ordered_ids(found, frozenset())
        if order_id in delivered or not first <= found[ids[0]].received_at[:10] <= last:
            continue
        line = ReportLine(order_id, None, ids, ids[1:])
        report.confirmed_never_delivered.append(line)
        if len(ids) > 1:
            report.confirmed_more_than_once.append(line)
    return report


def _ordered_ids(rows: dict[str, ConfirmationRow], linked: frozenset[str]) -> tuple[str, ...]:
    """Conversion ids, earliest received first; ids known only by the order's link come last."""
    known = sorted(rows.values(), key=lambda r: (r.received_at, r.conversion_id))
    return (*(r.conversion_id for r in known), *sorted(linked - rows.keys()))


_SECTIONS = (
    ("delivered_and_confirmed", "Delivered and confirmed"),
    ("delivered_never_confirmed", "Delivered, never confirmed (most often an order no affiliate referred)"),
    ("confirmed_more_than_once", "Confirmed more than once: double credits, deny the extra conversion ids"),
    (
        "confirmed_never_delivered",
        "Confirmed, never delivered by the relay (a client-side pixel still live?)",
    ),
)


def render_text(report: Report) -> str:
    grace = timedelta(days=report.grace_days)
    out = [
        f"Orders delivered {report.start} .. {report.end} (UTC); confirmations read "
        f"{report.start - grace} .. {report.end + grace}"
    ]
    for name, title in _SECTIONS:
        lines: list[ReportLine] = getattr(report, name)
        out.append(f"\n{title}: {len(lines)}")
        for line in lines:
            text = f"  order {line.order_id}"
            if line.delivered_at:
                text += f"  delivered {line.delivered_at}"
            if line.conversion_ids:
                text += "  conversions " + ", ".join(line.conversion_ids)
            if name == "confirmed_more_than_once":
                text += "  deny " + ", ".join(line.deny)
            out.append(text)
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    document = asdict(report)
    document.update(start=report.start.isoformat(), end=report.end.isoformat())
    return json.dumps(document, indent=2) + "\n"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m handler.reconcile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="start", type=_day, required=True, help="first delivery day (UTC)")
    parser.add_argument("--to", dest="end", type=_day, required=True, help="last delivery day (UTC)")
    parser.add_argument(
        "--table",
        default=os.environ.get("IDEMPOTENCY_TABLE_NAME"),
        help="the idempotency table (stack output IdempotencyTableName; default $IDEMPOTENCY_TABLE_NAME)",
    )
    parser.add_argument("--grace-days", type=int, default=1, choices=range(8), help="default 1")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    if not args.table:
        parser.error("--table is required (or set IDEMPOTENCY_TABLE_NAME)")
    return args


def main(argv: Sequence[str] | None = None, client: DynamoDBClient | None = None) -> int:
    args = parse_args(argv)
    if client is None:
        import boto3  # here, so that --help works without AWS configuration

        client = boto3.session.Session().client("dynamodb")
    try:
        report = reconcile(DynamoDBIndexReader(client, args.table), args.start, args.end, args.grace_days)
    except ValueError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the SDK's message names the error code and the table, nothing secret
        print(f"reconcile: cannot read the indexes of {args.table}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render_json(report) if args.json else render_text(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
