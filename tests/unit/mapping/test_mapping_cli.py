"""The operator command `python -m mapping FILE`: the body an event maps to, or its reasons."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from mapping.__main__ import main

EVENTS = Path(__file__).resolve().parents[3] / "events"


def test_a_valid_event_prints_its_body_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EVENTS / "datafly" / "seed-order.json")]) == 0
    out = capsys.readouterr().out
    body = json.loads(out[out.index("{") :], parse_float=Decimal)
    assert body["order_id"] == "20150401102883"
    assert body["items"][0]["price"] == Decimal("5.5")


def test_an_invalid_event_prints_every_reason_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EVENTS / "datafly" / "invalid-order.json")]) == 1
    out = capsys.readouterr().out
    assert "properties.cart_id: is required" in out
    assert "properties.products[0].price: '$5.50' is not a plain number" in out


def test_an_sqs_batch_is_shown_record_by_record(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EVENTS / "sqs-mixed-batch.json")]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "Records[" in line]
    assert [line.split(": ", 1)[1].split()[0] for line in lines] == ["order", "dropped", "invalid", "invalid"]


def test_an_eventbridge_event_is_unwrapped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EVENTS / "eventbridge-order.json")]) == 0
    assert "maps to this Refersion body" in capsys.readouterr().out
