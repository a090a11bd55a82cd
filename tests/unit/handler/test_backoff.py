"""The retry schedule (handler.backoff): exponential in the receive count, capped, Retry-After honoured."""

from __future__ import annotations

from handler.backoff import retry_delay_seconds


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
