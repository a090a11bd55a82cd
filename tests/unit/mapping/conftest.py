"""Shared samples for the mapping tests: the seed page's example and small helpers around it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import mapping
from local.seed import SEED_BODY_JSON
from local.seed import seed_event as load_seed_event

SEED_EVENT: dict[str, Any] = load_seed_event()


def exact_json(data: bytes | str) -> Any:
    """Parse JSON with amounts as Decimal, so 5.5 == 5.50 but 5.499999 != 5.5."""
    return json.loads(data, parse_float=Decimal)


def _map_body(event: Any) -> Any:
    return exact_json(mapping.map_order(event).to_json_bytes())


def _refusal_reasons(event: Any) -> tuple[str, ...]:
    with pytest.raises(mapping.InvalidEvent) as refused:
        mapping.map_order(event)
    return refused.value.reasons


def _with_replaced(part: dict[str, Any], values: dict[str, Any], drop: tuple[str, ...]) -> None:
    for name in drop:
        part.pop(name, None)
    part.update(values)


@pytest.fixture
def seed_event() -> dict[str, Any]:
    """Given the seed page's example event (a fresh copy: tests may change it)."""
    return copy.deepcopy(SEED_EVENT)


@pytest.fixture
def seed_body() -> Any:
    """The body the seed page says Refersion receives for it."""
    return exact_json(SEED_BODY_JSON)


@pytest.fixture
def order_event() -> Callable[..., dict[str, Any]]:
    """Given the seed event with some properties replaced (`drop` removes properties)."""

    def build(drop: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
        event = copy.deepcopy(SEED_EVENT)
        _with_replaced(event["properties"], properties, drop)
        return event

    return build


@pytest.fixture
def product_event() -> Callable[..., dict[str, Any]]:
    """Given the seed event whose one product has some fields replaced (`drop` removes fields)."""

    def build(drop: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
        event = copy.deepcopy(SEED_EVENT)
        _with_replaced(event["properties"]["products"][0], fields, drop)
        return event

    return build


@pytest.fixture
def body_of() -> Callable[[Any], Any]:
    """When the event is mapped, then this is the body Refersion receives (amounts as Decimal)."""
    return _map_body


@pytest.fixture
def reasons_of() -> Callable[[Any], tuple[str, ...]]:
    """When the event is mapped, then it is refused; these are the reasons given."""
    return _refusal_reasons
