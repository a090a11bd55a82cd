"""The whole local topology per test (local/stack.py): moto, the Refersion sandbox, the environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import LocalStack
from tests.support.keys import PUBLIC_KEY, SECRET_KEY


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """A started stack of its own (fresh moto server and sandbox on ephemeral ports)."""
    with LocalStack(public_key=PUBLIC_KEY, secret_key=SECRET_KEY) as running:
        yield running
    assert running.left_behind == [], "the stack left threads or listening sockets behind"
