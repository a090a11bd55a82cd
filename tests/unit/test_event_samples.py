"""The invocation samples under events/: what `make invoke`, `make preview`, `sam local invoke -e` and the
tests run on (CONTRACT §2)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.template import (
    EVENTS,
    ORDER_NAMES,
)

# ----------------------------------------------------------------------------- events/

EVENT_FILES = sorted(EVENTS.rglob("*.json"))
SQS_FILES = sorted(EVENTS.glob("sqs-*.json"))
SEED_PROPERTIES = {
    "cart_id": "DDXqfBngTWuX8N8Asqr2mY3RkmHCXdM7Vz6mdHkjwrEnN5zyRY",
    "order_id": "20150401102883",
    "currency": "USD",
    "shipping": 9.99,
    "tax": 0.57,
    "discount": 2.25,
    "coupon": "HOLIDAY1",
    "products": [{"sku": "PROD_A", "name": "Product A", "price": 5.50, "quantity": 2}],
}


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_event_samples_exist() -> None:
    names = {p.relative_to(EVENTS).as_posix() for p in EVENT_FILES}
    assert {
        "sqs-eventbridge-order.json",
        "sqs-datafly-order.json",
        "sqs-mixed-batch.json",
        "eventbridge-order.json",
        "datafly/seed-order.json",
        "datafly/page-view.json",
        "datafly/invalid-order.json",
        "datafly/second-order.json",
    } <= names
    assert [p for p in EVENTS.rglob("*") if p.is_file() and p.suffix != ".json"] == []


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.relative_to(EVENTS).as_posix())
def test_every_event_sample_is_a_json_object(path: Path) -> None:
    assert isinstance(load(path), dict)


@pytest.mark.parametrize("path", SQS_FILES, ids=lambda p: p.name)
def test_the_sqs_samples_look_like_what_lambda_sends(path: Path) -> None:
    records = load(path)["Records"]
    assert 1 <= len(records) <= 10
    assert len({r["messageId"] for r in records}) == len(records)
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].startswith("arn:aws:sqs:")
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        if record["body"] == "not json":  # the deliberate invalid record of the mixed batch
            assert path.name == "sqs-mixed-batch.json"
            continue
        body = json.loads(record["body"])
        assert isinstance(body, dict)
        if "detail" in body:
            assert isinstance(body["detail"], dict)


def test_seed_samples_carry_the_seed_order() -> None:
    seed = load(EVENTS / "datafly" / "seed-order.json")
    assert seed["type"] == "track"
    assert seed["event"] == "Order Completed"
    assert seed["properties"] == SEED_PROPERTIES
    assert seed["context"]["ip"] == "234.192.4.75"
    assert seed["context"]["traits"] == {"email": "jdoe@domain.com", "first_name": "John", "last_name": "Doe"}

    assert load(EVENTS / "eventbridge-order.json")["detail"] == seed
    (eb_record,) = load(EVENTS / "sqs-eventbridge-order.json")["Records"]
    assert json.loads(eb_record["body"])["detail"] == seed
    (direct_record,) = load(EVENTS / "sqs-datafly-order.json")["Records"]
    assert json.loads(direct_record["body"]) == seed


def test_the_mixed_batch_holds_an_order_a_page_view_an_invalid_order_and_not_json() -> None:
    records = load(EVENTS / "sqs-mixed-batch.json")["Records"]
    bodies = [r["body"] for r in records]
    assert len(bodies) == 4
    assert json.loads(bodies[0])["detail"] == load(EVENTS / "datafly" / "seed-order.json")
    assert json.loads(bodies[1]) == load(EVENTS / "datafly" / "page-view.json")
    assert json.loads(bodies[2])["detail"] == load(EVENTS / "datafly" / "invalid-order.json")
    assert bodies[3] == "not json"


def test_the_datafly_samples_are_what_their_names_say() -> None:
    page = load(EVENTS / "datafly" / "page-view.json")
    assert page["type"] == "page"
    invalid = load(EVENTS / "datafly" / "invalid-order.json")
    assert invalid["event"] in ORDER_NAMES
    assert "cart_id" not in invalid["properties"]
    assert invalid["properties"]["products"][0]["price"] == "$5.50"
    second = load(EVENTS / "datafly" / "second-order.json")
    assert second["event"].casefold() in {n.casefold() for n in ORDER_NAMES}
    assert second["properties"]["order_id"] != SEED_PROPERTIES["order_id"]
    assert second["properties"]["cart_id"] != SEED_PROPERTIES["cart_id"]
    assert len(second["properties"]["products"]) == 2
    assert isinstance(second["properties"]["coupon"], list)
    # The refund samples (make preview --delivered events/datafly/seed-order.json ...) refund the seed order
    partial = load(EVENTS / "datafly" / "refund-partial.json")
    assert partial["event"] == "Order Refunded"
    assert partial["properties"]["order_id"] == SEED_PROPERTIES["order_id"]
    assert partial["properties"]["products"] == [{"sku": "PROD_A", "quantity": 1}]
    cancel = load(EVENTS / "datafly" / "cancel-full.json")
    assert cancel["event"] == "Order Cancelled"
    assert cancel["properties"] == {"order_id": SEED_PROPERTIES["order_id"]}
    assert "items" not in second["properties"]
