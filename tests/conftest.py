"""Shared fixtures: a moto server over HTTP, the Refersion sandbox, and the relay's environment."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.aws import LocalAws, RelayResources, create_relay_resources
from local.sandbox import RefersionSandbox
from tests.support.keys import PUBLIC_KEY, SECRET_KEY
from tests.support.logs import captured_relay_logs
from tests.support.relay_env import RelayEnv


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    with LocalAws() as aws:
        yield aws


@pytest.fixture
def resources(local_aws: LocalAws) -> RelayResources:
    return create_relay_resources(local_aws, public_key=PUBLIC_KEY, secret_key=SECRET_KEY)


@pytest.fixture
def sandbox() -> Iterator[RefersionSandbox]:
    with RefersionSandbox(PUBLIC_KEY, SECRET_KEY) as running:
        yield running


@pytest.fixture
def relay_env(
    monkeypatch: pytest.MonkeyPatch, local_aws: LocalAws, resources: RelayResources, sandbox: RefersionSandbox
) -> Iterator[RelayEnv]:
    from handler.wiring import forget_relay

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in local_aws.environ().items():
        monkeypatch.setenv(name, value)
    env = RelayEnv(local_aws, resources, sandbox, monkeypatch)
    env.set(
        REFERSION_SECRET_ID=resources.secret_id,
        REFERSION_ENDPOINT=sandbox.url,
        REFERSION_TIMEOUT_SECONDS="1",
        REFERSION_MAX_CONCURRENCY="10",
        DEAD_LETTER_QUEUE_URL=resources.dlq_url,
        SOURCE_QUEUE_URL=None,
        IDEMPOTENCY_TABLE_NAME=None,
        POWERTOOLS_METRICS_NAMESPACE="RefersionRelayTest",
    )
    yield env
    forget_relay()


@pytest.fixture
def invoke(relay_env: RelayEnv) -> Callable[..., Any]:
    return relay_env.invoke


@pytest.fixture(autouse=True)
def relay_logs() -> Iterator[io.StringIO]:
    """Everything the relay's logger writes (JSON lines), for every test of the suite: after each test,
    whatever it did, the output must not hold the secret key or a raw email or IP (CONTRACT §7)."""
    with captured_relay_logs() as buffer:
        yield buffer
