"""A client's view of the Refersion sandbox for its own tests: the seed body, the key headers, a POST
helper, and fixtures for a running sandbox and a plain urllib3 pool (checked to leave no thread behind)."""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import urllib3

from local.sandbox import RefersionSandbox
from local.seed import SEED_BODY_JSON

PUBLIC, SECRET = "pub_test", "sec_test"
REPO_ROOT = Path(__file__).resolve().parents[2]

# The request body of the seed document's example, with plain floats as a client would send it.
SEED_BODY: dict[str, Any] = json.loads(SEED_BODY_JSON)


def order(order_id: str = "20150401102883", **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED_BODY)
    body["order_id"] = order_id
    body.update(changes)
    return body


def headers(public: str = PUBLIC, secret: str = SECRET) -> dict[str, str]:
    return {
        "Refersion-Public-Key": public,
        "Refersion-Secret-Key": secret,
        "Content-Type": "application/json",
    }


def post(
    http: urllib3.PoolManager,
    url: str,
    body: Any = None,
    *,
    hdrs: Mapping[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 2.0,
) -> urllib3.BaseHTTPResponse:
    data = raw if raw is not None else json.dumps(SEED_BODY if body is None else body).encode()
    return http.request(
        "POST", url, body=data, headers=dict(headers() if hdrs is None else hdrs), timeout=timeout
    )


def sandbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("refersion-sandbox")]


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    yield
    assert sandbox_threads() == []


@pytest.fixture
def sandbox() -> Iterator[RefersionSandbox]:
    with RefersionSandbox(PUBLIC, SECRET) as sb:
        yield sb


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=2.0)
    yield pool
    pool.clear()


def port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
