"""The sandbox plays Refersion's REST cancel (``POST /v2/conversion/cancel``) as documented (CONTRACT §9)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from local.sandbox import RefersionSandbox, Reply
from local.seed import SEED_BODY_JSON

pytestmark = pytest.mark.integration

PUBLIC, SECRET = "pub_test", "sec_test"
SEED_ORDER: dict[str, Any] = json.loads(SEED_BODY_JSON)
ORDER_ID = str(SEED_ORDER["order_id"])
SKU = str(SEED_ORDER["items"][0]["sku"])
PRICE = SEED_ORDER["items"][0]["price"]
QUANTITY = int(SEED_ORDER["items"][0]["quantity"])


@pytest.fixture
def sandbox() -> Iterator[RefersionSandbox]:
    with RefersionSandbox(PUBLIC, SECRET) as running:
        yield running


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager(retries=False) as pool:
        yield pool


def send(
    http: urllib3.PoolManager, url: str, body: Any, *, secret: str = SECRET, timeout: float = 2.0
) -> urllib3.BaseHTTPResponse:
    headers = {
        "Refersion-Public-Key": PUBLIC,
        "Refersion-Secret-Key": secret,
        "Content-Type": "application/json",
    }
    return http.request("POST", url, body=json.dumps(body).encode(), headers=headers, timeout=timeout)


def cancel_url(sandbox: RefersionSandbox) -> str:
    return sandbox.api_url + "/conversion/cancel"


def cancel(quantity: int = 1, order_id: str = ORDER_ID, sku: str = SKU) -> dict[str, Any]:
    return {"order_id": order_id, "items": [{"sku": sku, "price": PRICE, "quantity": quantity}]}


def paid(sandbox: RefersionSandbox, http: urllib3.PoolManager) -> None:
    assert send(http, sandbox.url, SEED_ORDER).status == 200


def test_the_api_url_is_the_sandbox_base_with_v2(sandbox: RefersionSandbox) -> None:
    assert sandbox.api_url == f"http://127.0.0.1:{sandbox.port}/v2"


def test_a_cancel_of_a_credited_order_is_applied_and_the_net_quantity_drops(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    # Given a paid order Refersion credited
    paid(sandbox, http)
    assert sandbox.net_quantities() == {ORDER_ID: {SKU: QUANTITY}}
    # When one item of it is cancelled
    answer = send(http, cancel_url(sandbox), cancel(1))
    # Then 200 with the conversion id, and the net quantity is one less
    assert answer.status == 200
    assert set(answer.json()) == {"conversion_id"}
    assert sandbox.net_quantities() == {ORDER_ID: {SKU: QUANTITY - 1}}
    assert [r.order_id for r in sandbox.cancels()] == [ORDER_ID]
    # And cancels are not counted as credited orders
    assert sandbox.accepted_order_ids() == [ORDER_ID]
    assert sandbox.duplicates() == {}


def test_each_accepted_cancel_subtracts_again(sandbox: RefersionSandbox, http: urllib3.PoolManager) -> None:
    paid(sandbox, http)
    send(http, cancel_url(sandbox), cancel(1))
    send(http, cancel_url(sandbox), cancel(1))
    assert sandbox.net_quantities() == {ORDER_ID: {SKU: QUANTITY - 2}}


def test_a_cancel_of_an_order_without_a_conversion_is_invalid_order_id(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    answer = send(http, cancel_url(sandbox), cancel(1, order_id="never-paid"))
    assert answer.status == 422
    assert answer.json() == {"errors": ["Invalid order ID (error 5)"]}
    assert sandbox.cancels() == []


def test_a_cancel_right_after_the_order_is_still_processing_then_applies(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    # Given Refersion takes 0.3 s to process a paid order (set through the control endpoint)
    control = sandbox.base_url + "/_sandbox/processing"
    assert http.request("POST", control, body=b'{"seconds": 0.3}').status == 200
    paid(sandbox, http)
    # When the cancel comes at once, it is 422; after the processing time, 200
    assert send(http, cancel_url(sandbox), cancel(1)).status == 422
    time.sleep(0.35)
    assert send(http, cancel_url(sandbox), cancel(1)).status == 200


def test_wrong_keys_are_refused_with_the_documented_error(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    paid(sandbox, http)
    answer = send(http, cancel_url(sandbox), cancel(1), secret="wrong")
    assert answer.status == 401
    assert answer.json() == {"error": "Invalid API credentials (error 2)."}
    assert sandbox.net_quantities() == {ORDER_ID: {SKU: QUANTITY}}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"items": [{"sku": "A", "price": 1, "quantity": 1}]}, "order_id"),
        ({"order_id": ORDER_ID, "items": []}, "items"),
        ({"order_id": ORDER_ID, "items": [{"sku": "A", "price": "1.00", "quantity": 1}]}, "price"),
        ({"order_id": ORDER_ID, "items": [{"sku": "A", "price": 1, "quantity": 0}]}, "quantity"),
        ({"order_id": ORDER_ID, "items": [{"price": 1, "quantity": 1}]}, "sku"),
    ],
)
def test_a_malformed_cancel_body_is_refused_naming_the_problem(
    sandbox: RefersionSandbox, http: urllib3.PoolManager, body: dict[str, Any], problem: str
) -> None:
    paid(sandbox, http)
    answer = send(http, cancel_url(sandbox), body)
    assert answer.status == 400
    assert problem in answer.json()["errors"][0]


def test_more_than_fifty_items_in_one_cancel_is_429(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    paid(sandbox, http)
    items = [{"sku": f"S{n}", "price": 1, "quantity": 1} for n in range(51)]
    assert send(http, cancel_url(sandbox), {"order_id": ORDER_ID, "items": items}).status == 429
    assert send(http, cancel_url(sandbox), {"order_id": ORDER_ID, "items": items[:50]}).status == 200


def test_scripted_faults_apply_to_the_cancel_path(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    # Given a credited order and a script: 503, then a drop after processing
    paid(sandbox, http)
    sandbox.script(Reply(status=503), Reply(drop="after"))
    # When two cancels are sent
    first = send(http, cancel_url(sandbox), cancel(1))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        send(http, cancel_url(sandbox), cancel(1))
    # Then the 503 applied nothing, the dropped one was applied without an answer
    assert first.status == 503
    assert sandbox.net_quantities() == {ORDER_ID: {SKU: QUANTITY - 1}}
    assert len(sandbox.cancels()) == 1


def test_the_net_quantities_and_cancel_count_are_readable_over_http(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    paid(sandbox, http)
    send(http, cancel_url(sandbox), cancel(1))
    net = http.request("GET", sandbox.base_url + "/_sandbox/net").json()
    stats = http.request("GET", sandbox.base_url + "/_sandbox/stats").json()
    assert net == {ORDER_ID: {SKU: QUANTITY - 1}}
    assert (stats["accepted"], stats["cancels"]) == (1, 1)
