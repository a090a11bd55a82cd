"""Pure pieces of the Lambda edge: configuration, status classification, retry pacing, key checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from handler.backoff import retry_delay_seconds
from handler.config import ConfigurationError, Settings
from handler.credentials import CredentialsError, KeyPair, key_pair_from_secret
from handler.outcomes import HttpVerdict, classify_status
from handler.refersion_client import parse_retry_after

BASE_ENV = {"REFERSION_SECRET_ID": "refersion/keys", "DEAD_LETTER_QUEUE_URL": "https://sqs.example/dlq"}


class TestSettings:
    def test_defaults_follow_the_spec(self) -> None:
        settings = Settings.from_env(BASE_ENV)
        assert settings.endpoint == "https://inbound-webhooks.refersion.com/tracker/orders/paid"
        assert settings.timeout_seconds == 10
        assert settings.consent_category == "marketing"
        assert settings.idempotency_table_name is None

    @pytest.mark.parametrize(
        "endpoint",
        ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x", "https://h.example/x"],
    )
    def test_https_or_loopback_http_endpoints_are_accepted(self, endpoint: str) -> None:
        assert Settings.from_env({**BASE_ENV, "REFERSION_ENDPOINT": endpoint}).endpoint == endpoint

    @pytest.mark.parametrize(
        "endpoint",
        ["http://inbound-webhooks.refersion.com/x", "http://10.0.0.1/x", "ftp://localhost/x", "nonsense"],
    )
    def test_plain_http_to_anything_but_loopback_is_a_configuration_error(self, endpoint: str) -> None:
        with pytest.raises(ConfigurationError, match=r"REFERSION_ENDPOINT: .*https://"):
            Settings.from_env({**BASE_ENV, "REFERSION_ENDPOINT": endpoint})

    def test_every_missing_variable_is_named_in_one_error(self) -> None:
        with pytest.raises(ConfigurationError) as caught:
            Settings.from_env({"REFERSION_TIMEOUT_SECONDS": "soon"})
        message = str(caught.value)
        for name in ("REFERSION_SECRET_ID", "DEAD_LETTER_QUEUE_URL", "REFERSION_TIMEOUT_SECONDS"):
            assert name in message

    def test_empty_optional_variables_mean_unset(self) -> None:
        settings = Settings.from_env({**BASE_ENV, "IDEMPOTENCY_TABLE_NAME": "", "SOURCE_QUEUE_URL": ""})
        assert settings.idempotency_table_name is None
        assert settings.source_queue_url is None


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, HttpVerdict.DELIVERED),
        (201, HttpVerdict.DELIVERED),
        (204, HttpVerdict.DELIVERED),
        (401, HttpVerdict.KEYS_REFUSED),
        (403, HttpVerdict.KEYS_REFUSED),
        (408, HttpVerdict.RETRY),
        (425, HttpVerdict.RETRY),
        (429, HttpVerdict.RETRY),
        (500, HttpVerdict.RETRY),
        (502, HttpVerdict.RETRY),
        (503, HttpVerdict.RETRY),
        (400, HttpVerdict.REJECTED),
        (404, HttpVerdict.REJECTED),
        (409, HttpVerdict.REJECTED),
        (422, HttpVerdict.REJECTED),
        (302, HttpVerdict.RETRY),
    ],
)
def test_status_classification_follows_the_outcome_table(status: int, verdict: HttpVerdict) -> None:
    assert classify_status(status) is verdict


class TestRetryPacing:
    def test_delay_grows_exponentially_with_the_receive_count_up_to_the_cap(self) -> None:
        delays = [retry_delay_seconds(n, 30, 3600) for n in range(1, 8)]
        assert delays == [30, 120, 480, 1920, 3600, 3600, 3600]

    def test_a_longer_retry_after_wins(self) -> None:
        assert retry_delay_seconds(1, 30, 3600, retry_after_seconds=95.2) == 96

    def test_a_shorter_retry_after_does_not_shorten_the_schedule(self) -> None:
        assert retry_delay_seconds(3, 30, 3600, retry_after_seconds=5) == 480

    def test_never_beyond_what_sqs_accepts(self) -> None:
        assert retry_delay_seconds(1, 30, 3600, retry_after_seconds=10**9) == 12 * 3600


class TestRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after("120") == 120

    def test_http_date(self) -> None:
        when = datetime.now(UTC) + timedelta(seconds=90)
        parsed = parse_retry_after(format_datetime(when, usegmt=True))
        assert parsed is not None
        assert 85 <= parsed <= 91

    @pytest.mark.parametrize("value", [None, "", "soon", "-5"])
    def test_unreadable_values_are_ignored(self, value: str | None) -> None:
        assert parse_retry_after(value) is None


class TestKeyPair:
    def test_a_well_formed_secret_gives_the_pair(self) -> None:
        pair = key_pair_from_secret({"public_key": "pub_1", "secret_key": "sec_1"}, "s")
        assert pair == KeyPair("pub_1", "sec_1")

    def test_the_pair_never_shows_its_values(self) -> None:
        pair = KeyPair("pub_1", "sec_VERYSECRET")
        assert "sec_VERYSECRET" not in repr(pair)
        assert "sec_VERYSECRET" not in str(pair)
        assert "sec_VERYSECRET" not in f"{pair}"

    @pytest.mark.parametrize(
        ("secret", "problem"),
        [
            ("just a string", "must be a JSON object"),
            ({"public_key": "pub_1"}, "secret_key is missing"),
            ({"public_key": "", "secret_key": "sec"}, "public_key must be a non-empty string"),
            ({"public_key": "pub", "secret_key": "sec\r\nX-Injected: 1"}, "not allowed in an HTTP header"),
            ({"public_key": "pub key", "secret_key": "sec"}, "not allowed in an HTTP header"),
        ],
    )
    def test_malformed_secrets_are_named_without_their_values(self, secret: object, problem: str) -> None:
        with pytest.raises(CredentialsError, match=problem) as caught:
            key_pair_from_secret(secret, "refersion/keys")
        assert "X-Injected" not in str(caught.value)
        assert "refersion/keys" in str(caught.value)
