"""What Refersion's answers may contain (Retry-After), what the pacer does with it, and which endpoint URLs
the relay accepts (CONTRACT §5): read defensively, never a reason to fail a record or a batch."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from handler.backoff import retry_delay_seconds
from handler.config import (
    MAX_VISIBILITY_SECONDS,
    ConfigurationError,
    Settings,
    checked_endpoint_url,
    is_loopback_host,
)
from handler.refersion_client import MAX_RETRY_AFTER_SECONDS, parse_retry_after

BASE_ENV = {"REFERSION_SECRET_ID": "refersion/keys", "DEAD_LETTER_QUEUE_URL": "https://sqs.example/dlq"}


class TestRetryAfterIsReadDefensively:
    @pytest.mark.parametrize(
        "value",
        ["²", "¹²", "٣", "\uff11\uff12", "1²", "9" * 400, "1e3", "0x10", "+5", "12.5", "1_000", "inf", "nan"],
    )
    def test_anything_but_ascii_digits_or_a_date_is_ignored_without_raising(self, value: str) -> None:
        # Given a Retry-After made of Unicode digits, hundreds of digits or a float spelling
        # When it is read, Then it is either ignored or a finite number of seconds within the cap
        parsed = parse_retry_after(value)
        assert parsed is None or (math.isfinite(parsed) and 0 <= parsed <= MAX_RETRY_AFTER_SECONDS)

    def test_a_huge_number_of_seconds_is_capped_at_twelve_hours(self) -> None:
        assert parse_retry_after("9" * 400) == 12 * 3600
        assert parse_retry_after("86400") == 12 * 3600

    def test_a_date_far_in_the_future_is_capped_at_twelve_hours(self) -> None:
        far = datetime.now(UTC) + timedelta(days=400)
        assert parse_retry_after(format_datetime(far, usegmt=True)) == 12 * 3600

    def test_seconds_and_dates_are_still_read(self) -> None:
        assert parse_retry_after(" 120 ") == 120
        soon = parse_retry_after(format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True))
        assert soon is not None
        assert 85 <= soon <= 91

    @given(st.text(max_size=60))
    @settings(max_examples=60, derandomize=True, deadline=None)
    def test_no_header_value_makes_it_raise(self, value: str) -> None:
        parsed = parse_retry_after(value)
        assert parsed is None or (math.isfinite(parsed) and 0 <= parsed <= MAX_RETRY_AFTER_SECONDS)


class TestBackoffArithmetic:
    @pytest.mark.parametrize("asked", [math.inf, -math.inf, math.nan, -5.0, 1e308, 0.0])
    def test_any_float_gives_a_delay_sqs_accepts(self, asked: float) -> None:
        # Given whatever number a Retry-After became, When the delay is computed
        delay = retry_delay_seconds(1, 30, 3600, retry_after_seconds=asked)
        # Then it is a whole number of seconds SQS accepts, never an exception
        assert isinstance(delay, int)
        assert 30 <= delay <= MAX_VISIBILITY_SECONDS

    def test_an_infinite_retry_after_means_the_longest_wait(self) -> None:
        assert retry_delay_seconds(1, 30, 3600, retry_after_seconds=math.inf) == MAX_VISIBILITY_SECONDS

    @given(
        st.integers(min_value=-5, max_value=10**6),
        st.floats(allow_nan=True, allow_infinity=True) | st.none(),
    )
    @settings(max_examples=60, derandomize=True, deadline=None)
    def test_never_raises_and_stays_within_what_sqs_accepts(self, count: int, asked: float | None) -> None:
        delay = retry_delay_seconds(count, 30, 3600, retry_after_seconds=asked)
        assert 0 <= delay <= MAX_VISIBILITY_SECONDS


def endpoint_error(endpoint: str) -> str:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({**BASE_ENV, "REFERSION_ENDPOINT": endpoint})
    return str(raised.value)


class TestEndpointIsCheckedWithTheClientsParser:
    def test_a_remote_host_hidden_behind_a_backslash_userinfo_is_refused(self) -> None:
        # Given an endpoint that urllib.parse reads as loopback but urllib3 sends to 10.0.0.1 in clear
        endpoint = "http://10.0.0.1:8080\\@127.0.0.1/tracker/orders/paid"
        # When the configuration is read, Then it is refused before any key could travel in clear
        assert "REFERSION_ENDPOINT" in endpoint_error(endpoint)

    @pytest.mark.parametrize(
        "endpoint",
        [
            "https://user:pw@inbound-webhooks.refersion.com/x",
            "https://user@inbound-webhooks.refersion.com/x",
            "http://user@127.0.0.1:8080/x",
        ],
    )
    def test_userinfo_is_refused(self, endpoint: str) -> None:
        assert "REFERSION_ENDPOINT" in endpoint_error(endpoint)

    @pytest.mark.parametrize(
        "endpoint",
        [
            "http://127.0.0.1:99999/x",
            "http://127.0.0.1:abc/x",
            "https://h.example:0/x",
            "https://h.example:65536/x",
            "https://h.example:-1/x",
            "https:///x",
            "https://:443/x",
            "https://h.example\\x",
            "https://h.example/a\\b",
            "https:// h.example/x",
        ],
    )
    def test_ports_hosts_and_characters_the_client_would_misread_are_refused(self, endpoint: str) -> None:
        assert "REFERSION_ENDPOINT" in endpoint_error(endpoint)

    @pytest.mark.parametrize(
        "endpoint",
        [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
            "https://h.example/x",
            "https://h.example:8443/x",
            "http://127.0.0.2:65535/x",
        ],
    )
    def test_well_formed_endpoints_are_accepted_unchanged(self, endpoint: str) -> None:
        assert Settings.from_env({**BASE_ENV, "REFERSION_ENDPOINT": endpoint}).endpoint == endpoint

    def test_the_check_is_one_reusable_function(self) -> None:
        # A future REFERSION_API_URL gets the same rules by calling the same function.
        assert checked_endpoint_url("https://api.refersion.com/v2") == "https://api.refersion.com/v2"
        with pytest.raises(ValueError, match="https://"):
            checked_endpoint_url("http://api.refersion.com/v2")

    @given(
        st.sampled_from(["http://", "https://", "HTTP://", ""]).flatmap(
            lambda scheme: st.text(alphabet="a1.:@[]/\\%?#;!é \t", max_size=30).map(scheme.__add__)
        )
    )
    @settings(max_examples=60, derandomize=True, deadline=None)
    def test_any_text_is_accepted_only_if_urllib3_sends_http_to_loopback_alone(self, value: str) -> None:
        # Given any text as REFERSION_ENDPOINT, When it is checked, Then it is refused with a ValueError
        # or it is a URL whose host, as urllib3 reads it, is reached over https or is loopback
        try:
            accepted = checked_endpoint_url(value)
        except ValueError:
            return
        url = parse_url(accepted)
        assert url.auth is None
        assert url.host
        assert url.scheme == "https" or is_loopback_host(url.host)
