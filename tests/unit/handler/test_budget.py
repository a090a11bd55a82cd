"""A record's time budget (handler.budget): what configuration can work, and one clear error if not."""

from __future__ import annotations

import io
import json

import pytest

from handler.budget import budget_fits_invocation, minimum_function_timeout_seconds, record_budget_seconds
from handler.config import ConfigurationError, Settings
from handler.wiring import _sdk_config

_BASE = {"REFERSION_SECRET_ID": "s", "DEAD_LETTER_QUEUE_URL": "https://sqs.example/q"}


def test_the_budget_covers_two_posts_and_every_aws_call_at_its_botocore_bound() -> None:
    # Given botocore's bounds for one AWS call (connect + read, times the attempts)
    config = _sdk_config(Settings.from_env(_BASE))
    # botocore's Config sets its options as attributes at run time: its stubs do not declare them
    call = config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout)  # type: ignore[attr-defined]
    # Then the budget is two posts, 12 AWS calls (11 of the record, 1 pacing the batch) and 2 s of slack
    assert record_budget_seconds(10) == 2 * 10 + 12 * call + 2 == 46


def test_a_timeout_whose_budget_cannot_fit_lambdas_maximum_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"REFERSION_TIMEOUT_SECONDS: .*over Lambda's 900 s maximum"):
        Settings.from_env({**_BASE, "REFERSION_TIMEOUT_SECONDS": "435"})
    assert minimum_function_timeout_seconds(434) <= 900
    assert Settings.from_env({**_BASE, "REFERSION_TIMEOUT_SECONDS": "434"}).timeout_seconds == 434


def test_an_invocation_shorter_than_the_budget_logs_one_error_naming_what_to_change(
    relay_logs: io.StringIO,
) -> None:
    # Given REFERSION_TIMEOUT_SECONDS=30 (budget 80 s) in a 60 s function
    budget = Settings.from_env({**_BASE, "REFERSION_TIMEOUT_SECONDS": "30"}).record_budget_seconds
    # When an invocation starts with 60 s left
    assert not budget_fits_invocation(60_000, budget)
    # Then one error says why nothing starts and which settings to change
    [line] = [json.loads(x) for x in relay_logs.getvalue().splitlines()]
    assert line["level"] == "ERROR"
    assert "FunctionTimeout" in line["fix"]
    assert "REFERSION_TIMEOUT_SECONDS" in line["fix"]
    assert budget_fits_invocation(budget * 1000, budget)
