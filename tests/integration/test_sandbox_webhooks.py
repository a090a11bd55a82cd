"""The sandbox's conversion webhooks (local/sandbox/webhooks.py) reach the receiver through the local
Function URL front (local/confirmations_url.py) and land in DynamoDB on moto: one per accepted post."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator

import pytest

from handler.confirmations import forget_receiver
from handler.order_state_dynamodb import DynamoDBOrderStates
from local.aws import LocalAws
from local.confirmations_url import ConfirmationsUrl
from local.sandbox import RefersionSandbox
from tests.support.confirmation_stack import create_indexed_table, create_token_secret
from tests.support.confirmations import NEVER_LOGGED_HERE, TOKEN
from tests.support.keys import NEVER_LOGGED, PUBLIC_KEY, SECRET_KEY
from tests.support.logs import captured_relay_logs

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    with captured_relay_logs((*NEVER_LOGGED, *NEVER_LOGGED_HERE)) as buffer:
        yield buffer


@pytest.fixture
def front(monkeypatch: pytest.MonkeyPatch, local_aws: LocalAws) -> Iterator[tuple[ConfirmationsUrl, str]]:
    table = create_indexed_table(local_aws)
    for name, value in local_aws.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONFIRMATION_TOKEN_SECRET_ID", create_token_secret(local_aws, TOKEN))
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", table)
    forget_receiver()
    with ConfirmationsUrl() as running:
        yield running, table
    forget_receiver()


def post(url: str, document: object, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(answer.status)


def paid_order(cart_id: str, order_id: str) -> dict[str, object]:
    return {
        "cart_id": cart_id,
        "order_id": order_id,
        "currency_code": "USD",
        "items": [{"sku": "PROD_A", "price": 5.5, "quantity": 2}],
    }


def test_an_order_accepted_twice_sends_two_webhooks_with_two_conversion_ids(
    front: tuple[ConfirmationsUrl, str], sandbox: RefersionSandbox, local_aws: LocalAws
) -> None:
    url, table = front
    keys = {"Refersion-Public-Key": PUBLIC_KEY, "Refersion-Secret-Key": SECRET_KEY}
    # Given a sandbox sending webhooks to the receiver's URL with its token, and a click on cart-1 only
    control = sandbox.base_url + "/_sandbox/clicks"
    assert post(control, {"webhook_url": url.url + TOKEN, "delay": 0.05, "cart_id": "cart-1"}) == 200
    # When the referred order is accepted twice and an unreferred one once
    # (one after the other: moto applies two concurrent ADDs to one string set non-atomically, where
    # DynamoDB does not; the receiver relies on DynamoDB's atomic ADD)
    assert post(sandbox.url, paid_order("cart-1", "1001"), keys) == 200
    assert sandbox.wait_for(lambda s: len(s.webhooks.sent()) >= 1, timeout=10)
    assert post(sandbox.url, paid_order("cart-1", "1001"), keys) == 200
    assert post(sandbox.url, paid_order("cart-2", "1002"), keys) == 200
    # Then two webhooks went out, both answered 200, with two conversion ids
    assert sandbox.wait_for(lambda s: len(s.webhooks.sent()) >= 2, timeout=10)
    sent = sandbox.webhooks.sent()
    assert [(w.order_id, w.status) for w in sent] == [("1001", 200), ("1001", 200)]
    assert len({w.conversion_id for w in sent}) == 2
    # And the receiver stored both against the order, nothing for the unreferred one
    store = DynamoDBOrderStates(local_aws.client("dynamodb"), table)
    assert {c.conversion_id for c in store.confirmations_for("1001")} == {w.conversion_id for w in sent}
    assert store.confirmations_for("1002") == ()


def test_the_front_answers_as_a_function_url_would(front: tuple[ConfirmationsUrl, str]) -> None:
    url, _ = front
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(url.url + "wrong", {"id": "1", "order_id": "2"})
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as get:
        urllib.request.urlopen(url.url + TOKEN, timeout=5)
    assert get.value.code == 405
