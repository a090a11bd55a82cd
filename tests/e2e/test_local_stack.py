"""The local stack itself: it owns os.environ while it runs, and leaves nothing behind when it stops."""

from __future__ import annotations

import os

import pytest

from local.stack import LocalStack
from tests.support.keys import PUBLIC_KEY, SECRET_KEY

pytestmark = pytest.mark.e2e


def test_stack_applies_the_function_environment_and_restores_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a process environment with a developer's AWS profile and an unrelated relay setting
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "from-the-shell")
    before = dict(os.environ)
    # When a stack runs
    with LocalStack(public_key=PUBLIC_KEY, secret_key=SECRET_KEY) as stack:
        during = dict(os.environ)
        endpoint, ports = stack.aws.endpoint_url, (stack.sandbox.port,)
        # Then the function's environment is in force, pointing at the local parts only
        assert "AWS_PROFILE" not in during
        assert during["IDEMPOTENCY_TABLE_NAME"] == stack.resources.table_name
        assert during["AWS_ENDPOINT_URL"] == endpoint
        assert during["REFERSION_ENDPOINT"] == stack.sandbox.url
        # ... and a second stack in the same process is refused (os.environ is process-wide)
        with pytest.raises(RuntimeError, match="another LocalStack"):
            LocalStack().start()
    # ... and afterwards os.environ is as it was, with nothing left running
    assert dict(os.environ) == before
    assert stack.left_behind == []
    assert ports


def test_stop_deletes_the_stacks_resources_as_delete_stack_would() -> None:
    # moto's state is process-wide: a stopped stack must not leave queues or rules for the next one
    with LocalStack(public_key=PUBLIC_KEY, secret_key=SECRET_KEY) as first:
        names = first.resources
    with LocalStack(public_key=PUBLIC_KEY, secret_key=SECRET_KEY) as second:
        sqs, events = second.aws.client("sqs"), second.aws.client("events")
        urls = sqs.list_queues(QueueNamePrefix=names.stack_name).get("QueueUrls", [])
        rules = events.list_rules(EventBusName=second.resources.bus_name)["Rules"]
        assert urls == []
        assert [r["Name"] for r in rules] == [second.resources.rule_name]
