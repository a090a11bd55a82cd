"""The leak-checked log capture of tests/conftest.py, here too: `make compat` runs tests/unit without
that conftest (it needs moto). It also checks the fakes' own secret keys."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from tests.support.fakes import KEYS, ROTATED_KEYS
from tests.support.keys import NEVER_LOGGED
from tests.support.logs import captured_relay_logs


@pytest.fixture(autouse=True)
def relay_logs() -> Iterator[io.StringIO]:
    with captured_relay_logs((*NEVER_LOGGED, KEYS.secret_key, ROTATED_KEYS.secret_key)) as buffer:
        yield buffer
