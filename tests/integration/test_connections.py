"""The urllib3 pool against the sandbox over real HTTP: keep-alive, and connections that died idle."""

from __future__ import annotations

import time

import pytest

from handler.credentials import KeyPair
from handler.outcomes import HttpVerdict
from handler.refersion_client import RefersionClient
from local.sandbox import RefersionSandbox
from local.seed import SEED_BODY_JSON
from tests.support.keys import PUBLIC_KEY, SECRET_KEY

pytestmark = pytest.mark.integration

KEYS = KeyPair(PUBLIC_KEY, SECRET_KEY)
BODY = SEED_BODY_JSON.encode()


def test_warm_posts_reuse_one_kept_alive_connection(sandbox: RefersionSandbox) -> None:
    client = RefersionClient(sandbox.url, timeout_seconds=2, max_connections=4)
    answers = [client.post(BODY, KEYS) for _ in range(5)]
    assert {answer.verdict for answer in answers} == {HttpVerdict.DELIVERED}
    assert sandbox.connections_opened() == 1


def test_a_connection_the_far_side_closed_while_idle_is_replaced_before_the_post(
    sandbox: RefersionSandbox,
) -> None:
    # Given a pooled connection that Refersion's side then closed (a restart drops every connection)
    client = RefersionClient(sandbox.url, timeout_seconds=2, max_connections=4)
    assert client.post(BODY, KEYS).verdict is HttpVerdict.DELIVERED
    sandbox.stop()
    sandbox.start()
    # When the next order goes out, it goes out on a new connection and is delivered, not retried
    answer = client.post(BODY, KEYS)
    assert answer.verdict is HttpVerdict.DELIVERED
    assert answer.status == 200


def test_connections_idle_longer_than_a_nat_keeps_its_flows_are_dropped_first(
    sandbox: RefersionSandbox,
) -> None:
    # A NAT that silently forgets an idle flow gives no sign on the socket; the client cannot detect
    # it, so it discards connections idle for longer than the NAT's limit (300 s; 0.3 s here).
    client = RefersionClient(sandbox.url, timeout_seconds=2, max_connections=4, idle_reset_seconds=0.3)
    client.post(BODY, KEYS)
    client.post(BODY, KEYS)
    assert sandbox.connections_opened() == 1
    time.sleep(0.5)
    assert client.post(BODY, KEYS).verdict is HttpVerdict.DELIVERED
    assert sandbox.connections_opened() == 2
