"""`python -m local.preview FILE...`: what the relay would do with an event, without sending anything.

Each file is read the way the function would receive it: an SQS batch (as in events/) record by record,
an EventBridge event as one event, and anything else (a bare Datafly event, say) as the body of one SQS
message. Each record gets the outcome the relay would give it, from the relay's own decision
(handler.decision.decide): dropped, skipped, invalid with every reason, or "would post" with the body.
A refund or cancellation (CONTRACT §9) is shown as the cancel calls it would make for the order given
with --delivered (an Order Completed event, as delivered), or, without it, for an order the relay never
saw once REFUND_WAIT_MINUTES are over. The post itself and the order state are left out. The consent
category is CONSENT_CATEGORY's, as for the function (default: marketing).

Exit status: 0 when no record is invalid, 1 when one is, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import ValidationError

from handler.config import Settings
from handler.decision import NotPosted, RefundRequest, decide
from handler.triggers import InboundRecord, is_eventbridge_event, is_sqs_batch
from local.preview_refunds import delivered_view, report_refund
from mapping.order_state import OrderView

_DEFAULT_CONSENT_CATEGORY = str(Settings.model_fields["consent_category"].default)


class UnreadableFile(Exception):
    """The file cannot be read as text; the message says why in one line."""


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    status = 0
    delivered: OrderView | None = None
    if args.delivered:
        try:
            delivered = _delivered_order(args.delivered, args.consent_category)
        except UnreadableFile as exc:
            print(f"preview: {exc}", file=err)
            return 2
    for name in args.files:
        try:
            text = _read(name)
        except UnreadableFile as exc:
            print(f"preview: {exc}", file=err)
            status = 2
            continue
        for label, inbound in records_in(text, name):
            ok = report(label, inbound, args.consent_category, out, delivered)
            status = max(status, 0 if ok else 1)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.preview", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="JSON files (- for standard input)")
    parser.add_argument(
        "--consent-category",
        default=os.environ.get("CONSENT_CATEGORY") or _DEFAULT_CONSENT_CATEGORY,
        help="the consent category the function checks (default: CONSENT_CATEGORY, else %(default)s)",
    )
    parser.add_argument(
        "--delivered",
        metavar="ORDER_FILE",
        help="for refunds: the Order Completed event of the order, as the relay delivered it",
    )
    return parser


def _delivered_order(name: str, consent_category: str) -> OrderView:
    """The view of the order in `name` as if delivered: the first record that maps to an order."""
    for _, inbound in records_in(_read(name), name):
        if isinstance(inbound, InboundRecord):
            view = delivered_view(decide(inbound, consent_category))
            if view is not None:
                return view
    raise UnreadableFile(f"{name} holds no Order Completed event that maps to a Refersion body")


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UnreadableFile(f"cannot read {name}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise UnreadableFile(f"cannot read {name}: not UTF-8 text") from None


def records_in(text: str, label: str) -> Iterator[tuple[str, InboundRecord | str]]:
    """Each record as the relay would receive it, or a string saying why Lambda could not send it."""
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = None
    if is_sqs_batch(document):
        for index, record in enumerate(document["Records"]):
            yield f"{label} Records[{index}]", _sqs_record(record)
    elif is_eventbridge_event(document):
        yield label, InboundRecord.from_eventbridge(document)
    else:
        yield label, InboundRecord(record_id=label, raw_body=text)


def _sqs_record(record: object) -> InboundRecord | str:
    try:
        return InboundRecord.from_sqs(SqsRecordModel.model_validate(record))
    except ValidationError as exc:
        fields = ", ".join(sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]}))
        return (
            f"not an SQS record Lambda could send ({fields or 'not an object'}): the whole invocation fails"
        )


def report(
    label: str,
    inbound: InboundRecord | str,
    consent_category: str,
    out: TextIO,
    delivered: OrderView | None = None,
) -> bool:
    """Print the record's outcome; False when it would be invalid."""
    if isinstance(inbound, str):
        print(f"{label}: invalid\n  {inbound}", file=out)
        return False
    decision = decide(inbound, consent_category, refunds=True)
    if isinstance(decision, RefundRequest):
        return report_refund(label, decision.event, delivered, out)
    if not isinstance(decision, NotPosted):
        print(f"{label}: would post order {decision.order_id} with this body:", file=out)
        print(json.dumps(json.loads(decision.to_json_bytes()), indent=2, ensure_ascii=False), file=out)
        return True
    if decision.outcome.quarantined:
        print(f"{label}: {decision.outcome.value} (set aside on the dead-letter queue)", file=out)
        for reason in decision.reasons:
            print(f"  {reason}", file=out)
        return False
    print(f"{label}: {decision.outcome.value}: {'; '.join(decision.reasons)}", file=out)
    return True


if __name__ == "__main__":
    sys.exit(main())
