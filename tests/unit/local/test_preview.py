"""`python -m local.preview FILE`: the outcome the relay would give each record, without sending it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from local.lambda_shapes import EVENTS_DIR, eventbridge_envelope, load_event, sqs_event
from local.preview import main


def _write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "event.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_a_valid_event_prints_the_body_that_would_be_posted_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(EVENTS_DIR / "datafly" / "seed-order.json")]) == 0
    out = capsys.readouterr().out
    assert "would post order 20150401102883 with this body:" in out
    body = json.loads(out[out.index("{") :], parse_float=Decimal)
    assert body["order_id"] == "20150401102883"
    assert body["items"][0]["price"] == Decimal("5.5")


def test_an_invalid_event_prints_every_reason_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EVENTS_DIR / "datafly" / "invalid-order.json")]) == 1
    out = capsys.readouterr().out
    assert "properties.cart_id: is required" in out
    assert "properties.products[0].price: '$5.50' is not a plain number" in out


def test_an_sqs_batch_is_shown_record_by_record(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EVENTS_DIR / "sqs-mixed-batch.json")]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "Records[" in line]
    assert [line.split(": ", 1)[1].split()[0].rstrip(":") for line in lines] == [
        "would",
        "dropped",
        "invalid",
        "invalid",
    ]


def test_an_eventbridge_event_is_unwrapped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EVENTS_DIR / "eventbridge-order.json")]) == 0
    assert "would post order 20150401102883" in capsys.readouterr().out


def test_a_redriven_on_failure_record_is_previewed_as_the_event_it_carries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an EventBridge-direct event that failed every retry, redriven to the queue as Lambda's
    # on-failure invocation record (the old preview called this "not a Datafly event")
    invocation_record = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": eventbridge_envelope(load_event("datafly/seed-order.json")),
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
    }
    # When it is previewed as an SQS batch
    status = main([_write(tmp_path, sqs_event(json.dumps(invocation_record)))])
    # Then the order inside would be posted, as the relay would
    assert status == 0
    assert "Records[0]: would post order 20150401102883" in capsys.readouterr().out


def test_a_record_over_256_kb_is_invalid_as_the_relay_would_find_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a valid order padded past SQS's 256 KB message limit (the old preview said it maps)
    event = load_event("datafly/seed-order.json")
    event["properties"]["notes"] = "x" * (256 * 1024)
    # When it is previewed
    status = main([_write(tmp_path, event)])
    # Then it is invalid for its size, and nothing would be posted
    out = capsys.readouterr().out
    assert status == 1
    assert "over the 256 KB limit of a record" in out
    assert "would post" not in out


def test_an_order_whose_consent_is_denied_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an order whose marketing consent is explicitly denied (the old preview said it maps)
    event = load_event("datafly/seed-order.json")
    event["context"]["consent"] = {"marketing": False}
    # When it is previewed
    status = main([_write(tmp_path, eventbridge_envelope(event))])
    # Then it is skipped, which is not an error
    out = capsys.readouterr().out
    assert status == 0
    assert ": skipped: consent for marketing denied" in out
    assert "would post" not in out


def test_the_consent_category_can_be_chosen_like_the_function_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("datafly/seed-order.json")
    event["context"]["consent"] = {"marketing": False, "analytics": True}
    assert main([_write(tmp_path, event), "--consent-category", "analytics"]) == 0
    assert "would post order 20150401102883" in capsys.readouterr().out


def test_a_batch_record_lambda_could_not_send_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([_write(tmp_path, {"Records": [{"body": "{}"}]})]) == 1
    assert "not an SQS record Lambda could send" in capsys.readouterr().out


def test_a_missing_file_is_one_line_on_stderr_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file that does not exist, next to one that does
    missing = tmp_path / "no-such-event.json"
    # When both are previewed
    status = main([str(missing), str(EVENTS_DIR / "datafly" / "page-view.json")])
    # Then the missing one is named in one line on stderr, without a traceback, and the other is shown
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.splitlines() == [f"preview: cannot read {missing}: No such file or directory"]
    assert "page-view.json: dropped: not an Order Completed event" in captured.out
