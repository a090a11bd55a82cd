"""The Refersion sandbox behaves like Refersion's documented paid-order webhook, and can misbehave on cue."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from local.sandbox import PATH, RefersionSandbox, Reply
from tests.support.sandbox_client import (
    PUBLIC,
    SECRET,
    SEED_BODY,
    headers,
    http,
    no_leftover_threads,
    order,
    post,
    sandbox,
)

# The fixtures imported above are used by name by pytest.
__all__ = ["http", "no_leftover_threads", "sandbox"]


# --------------------------------------------------------------------------- normal behaviour


def test_given_the_seed_example_and_right_keys_when_posted_then_200_and_recorded_as_accepted(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    response = post(http, sandbox.url)

    assert response.status == 200
    assert response.json() == {"status": "ok", "order_id": "20150401102883"}
    [received] = sandbox.received()
    assert (received.method, received.path, received.status) == ("POST", PATH, 200)
    assert received.accepted
    assert received.order_id == "20150401102883"
    assert received.headers["refersion-public-key"] == PUBLIC
    assert received.headers["REFERSION-SECRET-KEY"] == SECRET
    assert SECRET not in repr(received)
    assert received.json()["items"][0]["price"] == Decimal("5.50")
    assert sandbox.accepted() == [received]
    assert sandbox.accepted_order_ids() == ["20150401102883"]
    assert sandbox.duplicates() == {}
    assert sandbox.in_flight() == 0


@pytest.mark.parametrize(
    "hdrs",
    [
        headers(secret="sec_wrong"),
        headers(public="pub_wrong"),
        {"Content-Type": "application/json"},
        {"Refersion-Public-Key": PUBLIC, "Content-Type": "application/json"},
    ],
    ids=["wrong-secret", "wrong-public", "no-keys", "no-secret"],
)
def test_given_a_bad_key_pair_when_posted_then_401_and_not_accepted(
    sandbox: RefersionSandbox, http: urllib3.PoolManager, hdrs: dict[str, str]
) -> None:
    response = post(http, sandbox.url, hdrs=hdrs)

    assert response.status == 401
    assert response.json() == {"error": "Unauthorized: invalid key pair"}
    assert b"sec_" not in response.data
    assert b"pub_" not in response.data
    assert [(r.status, r.accepted) for r in sandbox.received()] == [(401, False)]
    assert sandbox.accepted() == []


def test_given_rotated_keys_when_the_old_pair_is_used_then_401_and_the_new_pair_200(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.set_keys("pub_new", "sec_new")

    assert post(http, sandbox.url).status == 401
    assert post(http, sandbox.url, hdrs=headers("pub_new", "sec_new")).status == 200
    assert [r.status for r in sandbox.received()] == [401, 200]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in SEED_BODY.items() if k != "cart_id"}, "cart_id"),
        (order(cart_id=""), "cart_id"),
        ({k: v for k, v in SEED_BODY.items() if k != "order_id"}, "order_id"),
        (order(order_id=""), "order_id"),
        ({k: v for k, v in SEED_BODY.items() if k != "currency_code"}, "currency_code"),
        (order(currency_code=""), "currency_code"),
        ({k: v for k, v in SEED_BODY.items() if k != "items"}, "items"),
        (order(items=[]), "items"),
        (order(items={"sku": "A", "price": 1, "quantity": 1}), "items"),
        (order(items=[{"price": 5.5, "quantity": 2}]), "items[0].sku"),
        (order(items=[{"sku": "A", "quantity": 2}]), "items[0].price"),
        (order(items=[{"sku": "A", "price": 5.5}]), "items[0].quantity"),
        (order(items=[{"sku": "A", "price": "$5.50", "quantity": 2}]), "items[0].price"),
        (order(items=[{"sku": "A", "price": "5.50", "quantity": 2}]), "items[0].price"),
        (order(items=[{"sku": "A", "price": 1, "quantity": 1}, {"sku": "B", "price": 1, "quantity": 0}]),
         "items[1].quantity"),
        (order(items=[{"sku": "A", "price": 5.5, "quantity": "2"}]), "items[0].quantity"),
        (order(items=[{"sku": "A", "price": 5.5, "quantity": 1.5}]), "items[0].quantity"),
        (order(shipping="9.99"), "shipping"),
    ],
    ids=[
        "no-cart_id", "empty-cart_id", "no-order_id", "empty-order_id", "no-currency_code",
        "empty-currency_code", "no-items", "empty-items", "items-not-a-list", "item-no-sku",
        "item-no-price", "item-no-quantity", "price-with-symbol", "price-as-string", "quantity-zero",
        "quantity-as-string", "quantity-fraction", "shipping-as-string",
    ],
)  # fmt: skip
def test_given_a_malformed_order_when_posted_then_400_naming_the_field(
    sandbox: RefersionSandbox, http: urllib3.PoolManager, body: dict[str, Any], field: str
) -> None:
    response = post(http, sandbox.url, body)

    assert response.status == 400
    assert response.json()["field"] == field
    assert field.split("[", maxsplit=1)[0] in response.json()["error"]
    assert [(r.status, r.accepted) for r in sandbox.received()] == [(400, False)]


@pytest.mark.parametrize(
    ("hdrs", "raw"),
    [
        ({**headers(), "Content-Type": "text/plain"}, json.dumps(SEED_BODY).encode()),
        (headers(), b"[1, 2]"),
        (headers(), b"{not json"),
        (headers(), b'{"cart_id": NaN}'),
    ],
    ids=["not-json-content-type", "array-body", "invalid-json", "nan"],
)
def test_given_a_body_that_is_not_a_json_object_when_posted_then_400(
    sandbox: RefersionSandbox, http: urllib3.PoolManager, hdrs: dict[str, str], raw: bytes
) -> None:
    response = post(http, sandbox.url, hdrs=hdrs, raw=raw)

    assert response.status == 400
    assert "error" in response.json()
    assert sandbox.accepted() == []


def test_given_another_path_or_method_when_requested_then_404_or_405(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    not_found = post(http, sandbox.base_url + "/tracker/orders/refunded")
    wrong_method = http.request("GET", sandbox.url, headers=headers())

    assert not_found.status == 404
    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert [r.status for r in sandbox.received()] == [404, 405]


def test_given_the_same_order_twice_when_posted_then_duplicates_counts_the_extra_one(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    for order_id in ("A", "B", "A", "A"):
        assert post(http, sandbox.url, order(order_id)).status == 200

    assert sandbox.accepted_order_ids() == ["A", "B", "A", "A"]
    assert sandbox.duplicates() == {"A": 2}
    sandbox.reset()
    assert sandbox.received() == []


# --------------------------------------------------------------------------- scripted misbehaviour


def test_given_a_scripted_429_when_posted_then_429_with_retry_after_and_the_next_request_is_normal(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script(Reply(status=429, headers={"Retry-After": "30"}), Reply(status=503))

    first, second, third = (post(http, sandbox.url) for _ in range(3))

    assert (first.status, first.headers["Retry-After"]) == (429, "30")
    assert "error" in first.json()
    assert second.status == 503
    assert third.status == 200
    assert [(r.status, r.accepted, r.fault) for r in sandbox.received()] == [
        (429, False, "script"),
        (503, False, "script"),
        (200, True, None),
    ]


def test_given_a_scripted_body_when_posted_then_that_body_is_answered(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script(Reply(status=502, body=b"<html>bad gateway</html>", headers={"Content-Type": "text/html"}))

    response = post(http, sandbox.url)

    assert (response.status, response.data) == (502, b"<html>bad gateway</html>")
    assert response.headers["Content-Type"] == "text/html"


def test_given_a_delayed_reply_when_the_client_times_out_then_read_timeout_and_the_order_lands_late(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script(Reply(delay=0.25))

    with pytest.raises(ReadTimeoutError):
        post(http, sandbox.url, timeout=0.1)

    assert sandbox.in_flight() == 1
    assert sandbox.wait_for(lambda sb: len(sb.accepted()) == 1, timeout=2.0)
    assert sandbox.in_flight() == 0


def test_given_drop_before_when_posted_then_the_client_sees_a_disconnect_and_nothing_is_accepted(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script(Reply(drop="before"))

    with pytest.raises(ProtocolError):
        post(http, sandbox.url)

    [received] = sandbox.received()
    assert (received.status, received.accepted, received.fault) == (None, False, "script")
    assert sandbox.accepted() == []
    assert post(http, sandbox.url).status == 200


def test_given_drop_after_when_posted_then_the_client_sees_a_disconnect_but_the_order_is_accepted(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script(Reply(drop="after"))

    with pytest.raises(ProtocolError):
        post(http, sandbox.url)

    [received] = sandbox.received()
    assert (received.status, received.accepted) == (None, True)
    assert sandbox.accepted_order_ids() == ["20150401102883"]


def test_given_drop_after_with_wrong_keys_when_posted_then_not_accepted(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script(Reply(drop="after"), Reply(status=200))

    with pytest.raises(ProtocolError):
        post(http, sandbox.url, hdrs=headers(secret="sec_wrong"))
    assert post(http, sandbox.url, hdrs=headers(secret="sec_wrong")).status == 200

    assert sandbox.accepted() == []


def test_given_script_for_one_order_when_orders_arrive_then_only_that_order_gets_it_first(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script_for("B", Reply(status=503))
    sandbox.script(Reply(status=500))

    statuses = [post(http, sandbox.url, order(oid)).status for oid in ("B", "A", "B", "A")]

    assert statuses == [503, 500, 200, 200]
    assert [r.fault for r in sandbox.received()] == ["script_for", "script", None, None]
    assert sandbox.accepted_order_ids() == ["B", "A"]


def test_given_scripts_when_cleared_then_normal_behaviour_returns(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.script(Reply(status=500))
    sandbox.script_for("A", Reply(status=500))
    sandbox.set_fault_mix({"500": 1}, seed=1)

    sandbox.clear_faults()

    assert post(http, sandbox.url, order("A")).status == 200


def fault_run(sandbox: RefersionSandbox, http: urllib3.PoolManager, seed: int) -> list[str]:
    sandbox.reset()
    sandbox.set_fault_mix(
        {"ok": 3, "500": 1, "503": 1, "429": 1, "drop_before": 1, "drop_after": 1}, seed=seed
    )
    outcomes: list[str] = []
    for n in range(24):
        try:
            response = post(http, sandbox.url, order(f"o{n}"))
        except ProtocolError:
            outcomes.append("dropped")
            continue
        if response.status == 429:
            assert response.headers["Retry-After"] == "1"
        outcomes.append(str(response.status))
    return outcomes


def test_given_a_fault_mix_when_replayed_with_the_same_seed_then_the_same_faults_in_the_same_order(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    first = fault_run(sandbox, http, seed=42)
    labels = [r.fault for r in sandbox.received()]
    accepted = sandbox.accepted_order_ids()
    second = fault_run(sandbox, http, seed=42)
    other = fault_run(sandbox, http, seed=43)

    assert first == second
    assert first != other
    assert {"200", "500", "503", "429", "dropped"} <= set(first)
    assert set(labels) <= {"ok", "500", "503", "429", "drop_before", "drop_after"}
    assert accepted == [f"o{n}" for n, label in enumerate(labels) if label in ("ok", "drop_after")]


def test_given_a_timeout_fault_when_the_client_waits_less_then_it_times_out() -> None:
    with RefersionSandbox() as sandbox:
        sandbox.set_fault_mix({"timeout": 1}, seed=0, fault_delay=0.2)
        pool = urllib3.PoolManager(retries=False)

        with pytest.raises(ReadTimeoutError):
            post(pool, sandbox.url, timeout=0.1)

        assert sandbox.wait_for(lambda sb: sb.received() != [], timeout=2.0)
        assert sandbox.received()[0].fault == "timeout"


def test_given_unknown_fault_names_when_setting_the_mix_then_value_error(sandbox: RefersionSandbox) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        sandbox.set_fault_mix({"explode": 1}, seed=0)
