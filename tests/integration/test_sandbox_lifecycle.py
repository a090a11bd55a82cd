"""The Refersion sandbox's connections, lifecycle, TLS, control endpoints and command line."""

from __future__ import annotations

import json
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import trustme
import urllib3
from urllib3.exceptions import ProtocolError, SSLError

from local.sandbox import PATH, RefersionSandbox, Reply
from tests.support.sandbox_client import (
    REPO_ROOT,
    SEED_BODY,
    headers,
    http,
    no_leftover_threads,
    order,
    port_is_closed,
    post,
    sandbox,
    sandbox_threads,
)

# The fixtures imported above are used by name by pytest.
__all__ = ["http", "no_leftover_threads", "sandbox"]


# --------------------------------------------------------------------------- connections and lifecycle


def test_given_one_pool_manager_when_10_sequential_requests_then_one_connection_is_opened(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    for n in range(10):
        assert post(http, sandbox.url, order(str(n))).status == 200

    assert sandbox.connections_opened() == 1
    assert {r.connection_id for r in sandbox.received()} == {1}


def test_given_latency_when_posted_then_every_answer_waits_at_least_that_long(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    sandbox.set_latency(0.05)

    started = time.monotonic()
    assert post(http, sandbox.url).status == 200
    assert post(http, sandbox.url, hdrs=headers(secret="x")).status == 401

    assert time.monotonic() - started >= 0.1


def test_given_an_idle_keep_alive_client_and_a_sleeping_reply_when_stopped_then_prompt_and_port_closed(
    http: urllib3.PoolManager,
) -> None:
    sandbox = RefersionSandbox().start()
    port = sandbox.port
    assert post(http, sandbox.url).status == 200  # leaves an idle keep-alive connection in the pool
    sandbox.script(Reply(delay=30))
    errors: list[BaseException] = []

    def delayed_client() -> None:
        try:
            post(urllib3.PoolManager(retries=False), sandbox.url, timeout=10)
        except Exception as exc:
            errors.append(exc)

    client = threading.Thread(target=delayed_client)
    client.start()
    assert sandbox.wait_for(lambda sb: sb.in_flight() == 1, timeout=2.0)

    started = time.monotonic()
    sandbox.stop()
    elapsed = time.monotonic() - started
    client.join(timeout=5)

    assert elapsed < 2.0
    assert not client.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ProtocolError)
    assert port_is_closed(port)
    assert sandbox_threads() == []
    assert [(r.status, r.accepted) for r in sandbox.received()] == [(200, True), (None, False)]


def test_given_a_stopped_sandbox_when_started_again_then_it_serves_on_the_same_port(
    http: urllib3.PoolManager,
) -> None:
    sandbox = RefersionSandbox().start()
    url = sandbox.url
    sandbox.stop()
    sandbox.stop()  # idempotent

    with sandbox:
        assert sandbox.url == url
        assert post(http, url).status == 200


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_given_tls_when_a_client_trusts_the_ca_then_200_and_a_client_with_default_trust_fails(
    ca: trustme.CA, capfd: pytest.CaptureFixture[str]
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    # Trusts the test CA only, passed explicitly (never through SSL_CERT_FILE or AWS_CA_BUNDLE).
    trusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(trusting)
    trusting_pool = urllib3.PoolManager(retries=False, timeout=2.0, ssl_context=trusting)
    default_pool = urllib3.PoolManager(retries=False, timeout=2.0)

    with RefersionSandbox(ssl_context=server_context) as sandbox:
        assert sandbox.url.startswith("https://127.0.0.1:")
        assert post(trusting_pool, sandbox.url).status == 200
        with pytest.raises(SSLError):
            post(default_pool, sandbox.url)
        # A TCP client that never starts its handshake must not wedge the server either.
        with socket.create_connection(("127.0.0.1", sandbox.port)):
            assert post(trusting_pool, sandbox.url, order("after-failure")).status == 200

    assert sandbox.accepted_order_ids() == ["20150401102883", "after-failure"]
    assert sandbox.connections_opened() >= 3
    assert capfd.readouterr().err == ""
    trusting_pool.clear()
    default_pool.clear()


# --------------------------------------------------------------------------- control endpoints and CLI


def test_given_control_endpoints_when_another_process_scripts_and_inspects_then_it_works(
    sandbox: RefersionSandbox, http: urllib3.PoolManager
) -> None:
    control = sandbox.base_url + "/_sandbox"
    script = [{"status": 503, "headers": {"Retry-After": "5"}}, {"drop": "before"}]
    assert http.request("POST", control + "/script", body=json.dumps(script)).status == 200

    assert post(http, sandbox.url).headers["Retry-After"] == "5"
    with pytest.raises(ProtocolError):
        post(http, sandbox.url)
    assert post(http, sandbox.url).status == 200

    listed = http.request("GET", control + "/received").json()
    assert [(r["status"], r["accepted"], r["order_id"]) for r in listed] == [
        (503, False, "20150401102883"),
        (None, False, "20150401102883"),
        (200, True, "20150401102883"),
    ]
    assert json.loads(listed[0]["body"]) == SEED_BODY
    assert http.request("GET", control + "/stats").json()["accepted"] == 1
    assert http.request("POST", control + "/script", body=b'[{"status": "x"}]').status == 400
    assert http.request("POST", control + "/reset").status == 200
    assert sandbox.received() == []


def test_given_the_module_run_as_a_script_when_started_then_it_prints_its_url_and_serves_until_interrupted(
    http: urllib3.PoolManager,
) -> None:
    command = [sys.executable, "-m", "local.sandbox", "--port", "0", "--public-key", "pub"]
    command += ["--secret-key", "sec"]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                assert selector.select(timeout=10), "the sandbox printed nothing"
            first_line = process.stdout.readline()
            url = first_line.split()[-1]
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith(PATH)

            assert post(http, url, hdrs=headers("pub", "sec")).status == 200
            assert post(http, url).status == 401

            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=5) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_given_reply_values_when_invalid_then_rejected_early() -> None:
    with pytest.raises(ValueError, match="status"):
        Reply(status=99)
    with pytest.raises(ValueError, match="drop"):
        Reply(drop="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay"):
        Reply(delay=-1)
