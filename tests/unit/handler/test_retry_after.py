"""Refersion's Retry-After header (handler.refersion_client.parse_retry_after): seconds or an HTTP date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from handler.refersion_client import parse_retry_after


class TestRetryAfter:
    def test_a_number_of_seconds_is_read_as_seconds(self) -> None:
        assert parse_retry_after("120") == 120

    def test_an_http_date_is_read_as_the_seconds_until_then(self) -> None:
        when = datetime.now(UTC) + timedelta(seconds=90)
        parsed = parse_retry_after(format_datetime(when, usegmt=True))
        assert parsed is not None
        assert 85 <= parsed <= 91

    @pytest.mark.parametrize("value", [None, "", "soon", "-5"])
    def test_unreadable_values_are_ignored(self, value: str | None) -> None:
        assert parse_retry_after(value) is None
