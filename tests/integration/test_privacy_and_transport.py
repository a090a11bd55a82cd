"""CONTRACT §5 transport and §7 consent and privacy, through the real handler."""

from __future__ import annotations

import hashlib
import io
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from local.aws import drain_queue
from local.lambda_shapes import eventbridge_envelope, sqs_event
from local.sandbox import RefersionSandbox, Reply
from local.seed import seed_event
from tests.support.events import as_eventbridge_body, failures
from tests.support.keys import NEVER_LOGGED, PUBLIC_KEY, SECRET_KEY
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration


def outcome_lines(logs: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    return [line for line in lines if "outcome" in line]


def with_consent(consent: dict[str, Any]) -> dict[str, Any]:
    event = seed_event()
    event["context"]["consent"] = consent
    return event


class TestConsent:
    @pytest.mark.parametrize(
        "consent",
        [{"marketing": False}, {"canonical": {"marketing": False}}, {"marketing": "denied"}],
        ids=["flat", "canonical", "denied-word"],
    )
    def test_denied_marketing_consent_is_skipped_never_posted_nor_quarantined(
        self, relay_env: RelayEnv, relay_logs: io.StringIO, consent: dict[str, Any]
    ) -> None:
        response = relay_env.invoke(sqs_event(as_eventbridge_body(with_consent(consent))))
        assert failures(response) == []
        assert relay_env.sandbox.received() == []
        assert drain_queue(relay_env.aws, relay_env.resources.dlq_url) == []
        [line] = outcome_lines(relay_logs)
        assert line["outcome"] == "skipped"
        assert line["reason"] == "consent for marketing denied"

    @pytest.mark.parametrize(
        "consent",
        [{"marketing": True}, {}, {"analytics": False}],
        ids=["granted", "no-data", "other-category"],
    )
    def test_anything_but_an_explicit_denial_is_delivered(
        self, relay_env: RelayEnv, consent: dict[str, Any]
    ) -> None:
        relay_env.invoke(sqs_event(as_eventbridge_body(with_consent(consent))))
        assert relay_env.sandbox.accepted_order_ids() == ["20150401102883"]

    def test_the_consent_category_is_configurable(self, relay_env: RelayEnv) -> None:
        relay_env.set(CONSENT_CATEGORY="analytics")
        relay_env.invoke(
            sqs_event(as_eventbridge_body(with_consent({"marketing": False, "analytics": False})))
        )
        assert relay_env.sandbox.received() == []


def test_a_hashed_email_is_not_sent(relay_env: RelayEnv) -> None:
    event = seed_event()
    event["context"]["traits"]["email"] = hashlib.sha256(b"jdoe@domain.com").hexdigest().upper()
    relay_env.invoke(sqs_event(json.dumps(event)))
    [request] = relay_env.sandbox.received()
    assert "email" not in request.json()["customer"]
    assert request.json()["customer"]["first_name"] == "John"


def test_each_record_gets_one_outcome_line_with_the_masked_body(
    relay_env: RelayEnv, relay_logs: io.StringIO
) -> None:
    relay_env.invoke(sqs_event(as_eventbridge_body(seed_event()), "not json"))
    lines = outcome_lines(relay_logs)
    assert sorted(line["outcome"] for line in lines) == ["delivered", "invalid"]
    [delivered] = [line for line in lines if line["outcome"] == "delivered"]
    assert delivered["order_id"] == "20150401102883"
    assert delivered["cart_id"] == "DDXqfBngTWuX8N8Asqr2mY3RkmHCXdM7Vz6mdHkjwrEnN5zyRY"
    assert delivered["http_status"] == 200
    assert delivered["latency_ms"] > 0
    assert delivered["body"]["customer"]["email"] == "j***@d***.com"
    assert delivered["body"]["customer"]["ip_address"] == "234.192.x.x"
    assert delivered["body"]["items"] == [{"sku": "PROD_A", "name": "Product A", "price": 5.5, "quantity": 2}]


def test_a_response_echoing_personal_data_is_masked_in_the_reason(relay_env: RelayEnv) -> None:
    relay_env.sandbox.script(
        Reply(status=422, body=b'{"error": "customer jdoe@domain.com from 234.192.4.75 blocked"}')
    )
    relay_env.invoke(sqs_event(as_eventbridge_body(seed_event())))
    [quarantined] = drain_queue(relay_env.aws, relay_env.resources.dlq_url)
    reason = quarantined["MessageAttributes"]["reason"]["StringValue"]
    assert "j***@d***.com" in reason
    assert "234.192.x.x" in reason
    attributes = json.dumps(quarantined["MessageAttributes"])
    assert not [value for value in NEVER_LOGGED if value in attributes]


def test_nothing_secret_or_personal_reaches_logs_metrics_errors_or_attributes(
    relay_env: RelayEnv, relay_logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every outcome at once: delivered, retry (and a raised EventBridge retry), rejected, invalid
    relay_env.sandbox.script_for("R-503", Reply(status=503))
    relay_env.sandbox.script_for("R-422", Reply(status=422))
    relay_env.invoke(
        sqs_event(
            as_eventbridge_body(seed_event()),
            as_eventbridge_body(seed_event(order_id="R-503")),
            as_eventbridge_body(seed_event(order_id="R-422")),
            as_eventbridge_body(seed_event(currency="dollars")),
        )
    )
    relay_env.sandbox.script(Reply(status=500))
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the message is what is checked
        relay_env.invoke(eventbridge_envelope(seed_event(order_id="EB-1")))
    everything = "\n".join(
        [
            relay_logs.getvalue(),
            capsys.readouterr().out,  # metrics (EMF)
            str(raised.value),
            repr(raised.value),
            json.dumps(
                [m["MessageAttributes"] for m in drain_queue(relay_env.aws, relay_env.resources.dlq_url)]
            ),
        ]
    )
    assert "R-503" in everything  # the capture did see the scenario
    assert not [value for value in NEVER_LOGGED if value in everything]


def test_the_leak_check_itself_catches_a_leak(relay_logs: io.StringIO) -> None:
    # Guard for the autouse check of tests/conftest.py: it must see what the relay's logger writes.
    from handler.observability import logger

    logger.info("canary", extra={"email": "jdoe@domain.com"})
    assert "jdoe@domain.com" in relay_logs.getvalue()
    relay_logs.seek(0)
    relay_logs.truncate()


def test_an_oversized_record_is_invalid_and_quarantined_unchanged(relay_env: RelayEnv) -> None:
    event = seed_event()
    event["properties"]["notes"] = "x" * (300 * 1024)
    body = json.dumps(event)
    response = relay_env.invoke(sqs_event(body))
    assert failures(response) == []
    assert relay_env.sandbox.received() == []
    [quarantined] = drain_queue(relay_env.aws, relay_env.resources.dlq_url)
    assert quarantined["Body"] == body
    assert "over the 256 KB limit" in quarantined["MessageAttributes"]["reason"]["StringValue"]


def test_a_redriven_invocation_record_of_the_direct_path_is_relayed(relay_env: RelayEnv) -> None:
    # What Lambda's on-failure destination wrote for an EventBridge-direct event, redriven to the queue
    record = {
        "version": "1.0",
        "timestamp": "2026-11-20T10:05:00.000Z",
        "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": eventbridge_envelope(seed_event()),
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
    }
    assert failures(relay_env.invoke(sqs_event(json.dumps(record)))) == []
    assert relay_env.sandbox.accepted_order_ids() == ["20150401102883"]


class TestTls:
    @pytest.fixture
    def ca(self) -> trustme.CA:
        return trustme.CA()

    @pytest.fixture
    def ca_file(self, ca: trustme.CA, tmp_path: Path) -> str:
        path = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(path))
        return str(path)

    def _tls_sandbox(self, ca: trustme.CA, hostname: str) -> RefersionSandbox:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(hostname).configure_cert(context)
        return RefersionSandbox(PUBLIC_KEY, SECRET_KEY, ssl_context=context)

    @pytest.fixture
    def tls_env(self, relay_env: RelayEnv, ca_file: str) -> RelayEnv:
        # The environment sets SSL_CERT_FILE/SSL_CERT_DIR to the system store: point them at our CA only.
        relay_env.monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        relay_env.set(SSL_CERT_FILE=ca_file)
        return relay_env

    def test_a_trusted_certificate_delivers(self, tls_env: RelayEnv, ca: trustme.CA) -> None:
        with self._tls_sandbox(ca, "127.0.0.1") as server:
            tls_env.set(REFERSION_ENDPOINT=server.url)
            assert server.url.startswith("https://")
            assert failures(tls_env.invoke(sqs_event(as_eventbridge_body(seed_event())))) == []
            assert server.accepted_order_ids() == ["20150401102883"]

    def test_an_untrusted_certificate_is_never_delivered_and_comes_back(
        self, tls_env: RelayEnv, relay_logs: io.StringIO
    ) -> None:
        stranger = trustme.CA()  # a certificate from a CA the relay does not trust
        with self._tls_sandbox(stranger, "127.0.0.1") as server:
            tls_env.set(REFERSION_ENDPOINT=server.url)
            event = sqs_event(as_eventbridge_body(seed_event()))
            assert failures(tls_env.invoke(event)) == [event["Records"][0]["messageId"]]
            assert server.accepted() == []
        [line] = outcome_lines(relay_logs)
        assert "TLS verification failed" in line["reason"]
        assert "certificate verify failed" in line["reason"]

    def test_a_certificate_for_another_host_is_never_delivered_and_comes_back(
        self, tls_env: RelayEnv, ca: trustme.CA, relay_logs: io.StringIO
    ) -> None:
        with self._tls_sandbox(ca, "refersion.example") as server:
            tls_env.set(REFERSION_ENDPOINT=server.url)
            event = sqs_event(as_eventbridge_body(seed_event()))
            assert failures(tls_env.invoke(event)) == [event["Records"][0]["messageId"]]
            assert server.accepted() == []
        [line] = outcome_lines(relay_logs)
        assert "TLS verification failed" in line["reason"]

    def test_plain_http_to_a_remote_host_is_a_configuration_error(self, relay_env: RelayEnv) -> None:
        relay_env.set(REFERSION_ENDPOINT="http://inbound-webhooks.refersion.com/tracker/orders/paid")
        with pytest.raises(Exception, match="REFERSION_ENDPOINT"):
            relay_env.invoke(sqs_event(as_eventbridge_body(seed_event())))
        assert relay_env.sandbox.received() == []
