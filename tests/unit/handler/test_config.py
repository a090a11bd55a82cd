"""The relay's configuration (handler.config): defaults, endpoint rules, errors that name variables."""

from __future__ import annotations

import pytest

from handler.config import ConfigurationError, Settings

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

    def test_refunds_without_the_order_state_table_are_refused_naming_both_variables(self) -> None:
        # Given refunds switched on but no table to keep the order state in
        with pytest.raises(ConfigurationError, match=r"REFUNDS_ENABLED=true needs IDEMPOTENCY_TABLE_NAME"):
            Settings.from_env({**BASE_ENV, "REFUNDS_ENABLED": "true"})
        # Then with the table they are accepted, and the API URL is checked like the endpoint
        on = Settings.from_env({**BASE_ENV, "REFUNDS_ENABLED": "true", "IDEMPOTENCY_TABLE_NAME": "orders"})
        assert on.refunds_enabled
        assert on.api_url == "https://api.refersion.com/v2"
        with pytest.raises(ConfigurationError, match=r"REFERSION_API_URL"):
            Settings.from_env({**BASE_ENV, "REFERSION_API_URL": "http://api.example.com/v2"})
