"""`make preview` on refunds and cancellations (CONTRACT §9): the cancel calls they would make."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from local.lambda_shapes import EVENTS_DIR
from local.preview import main

SEED_ORDER = str(EVENTS_DIR / "datafly" / "seed-order.json")
PARTIAL = str(EVENTS_DIR / "datafly" / "refund-partial.json")
FULL = str(EVENTS_DIR / "datafly" / "cancel-full.json")


def _bodies(out: str) -> list[dict[str, object]]:
    """The cancel bodies printed (each an indented JSON object starting on a line of its own)."""
    chunks = out.split("\n{")[1:]
    return [json.loads("{" + chunk[: chunk.index("\n}") + 2], parse_float=Decimal) for chunk in chunks]


def test_a_partial_refund_of_a_delivered_order_cancels_the_listed_units_at_the_delivered_price(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the seed order as delivered, and a refund of 1 of its 2 units (the event gives no price)
    assert main(["--delivered", SEED_ORDER, PARTIAL]) == 0
    # Then the one cancel call is 1 x PROD_A at the delivered 5.50
    out = capsys.readouterr().out
    assert "would cancel in 1 call(s)" in out
    assert _bodies(out) == [
        {"order_id": "20150401102883", "items": [{"sku": "PROD_A", "price": Decimal("5.5"), "quantity": 1}]}
    ]


def test_a_full_cancellation_cancels_every_delivered_unit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--delivered", SEED_ORDER, FULL]) == 0
    assert _bodies(capsys.readouterr().out)[0]["items"] == [
        {"sku": "PROD_A", "price": Decimal("5.5"), "quantity": 2}
    ]


def test_without_the_delivered_order_a_full_cancellation_is_skipped_after_the_wait(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([FULL]) == 0
    out = capsys.readouterr().out
    assert "waits for it up to REFUND_WAIT_MINUTES" in out
    assert "skipped: nothing known to cancel" in out


def test_a_refund_of_a_sku_that_was_not_delivered_is_invalid_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refund = json.loads(Path(PARTIAL).read_text())
    refund["properties"]["products"] = [{"sku": "PROD_Z", "quantity": 1}]
    path = tmp_path / "refund.json"
    path.write_text(json.dumps(refund))
    assert main(["--delivered", SEED_ORDER, str(path)]) == 1
    out = capsys.readouterr().out
    assert "invalid (set aside on the dead-letter queue)" in out
    assert "PROD_Z" in out


def test_an_unreadable_delivered_order_is_one_line_and_exit_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--delivered", "missing-order.json", FULL]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "preview: cannot read missing-order.json: No such file or directory"
    assert captured.out == ""
