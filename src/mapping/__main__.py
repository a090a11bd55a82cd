"""`python -m mapping EVENT.json [...]`: show the Refersion body an event maps to, or why it cannot.

Nothing is sent. Accepts a bare Datafly event, an EventBridge event whose detail is one, or an SQS
batch (as in events/) whose bodies are either. Exit status 0 when every order maps, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mapping import EventKind, InvalidEvent, classify_event, map_order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mapping", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON files (use - for standard input)")
    args = parser.parse_args(argv)
    ok = True
    for path in args.files:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        for label, candidate in _events_in(text, str(path)):
            ok = _report(label, candidate) and ok
    return 0 if ok else 1


def _events_in(text: str, label: str) -> Iterator[tuple[str, Any]]:
    try:
        document = json.loads(text)
    except ValueError:
        yield label, text  # reported as not JSON
        return
    records = document.get("Records") if isinstance(document, dict) else None
    if isinstance(records, list):
        for index, record in enumerate(records):
            body = record.get("body") if isinstance(record, dict) else None
            yield f"{label} Records[{index}]", _decoded(body)
        return
    yield label, document


def _decoded(body: object) -> Any:
    try:
        return json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return body


def _report(label: str, candidate: Any) -> bool:
    if (
        isinstance(candidate, dict)
        and "detail-type" in candidate
        and isinstance(candidate.get("detail"), dict)
    ):
        candidate = candidate["detail"]
    if isinstance(candidate, str):
        print(f"{label}: invalid\n  body: is not JSON")
        return False
    try:
        if classify_event(candidate) is not EventKind.ORDER_COMPLETED:
            print(f"{label}: dropped (not an Order Completed event)")
            return True
        order = map_order(candidate)
    except InvalidEvent as exc:
        print(f"{label}: invalid")
        for reason in exc.reasons:
            print(f"  {reason}")
        return False
    print(f"{label}: order {order.order_id} maps to this Refersion body:")
    print(json.dumps(json.loads(order.to_json_bytes()), indent=2, ensure_ascii=False))
    return True


if __name__ == "__main__":
    sys.exit(main())
