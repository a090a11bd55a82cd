"""Any JSON-like input gives an order, or InvalidEvent with readable reasons: never a crash."""

from __future__ import annotations

import copy
import json
import math
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest

import mapping

WEIRD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    math.nan,
    math.inf,
    -math.inf,
    10**30,
    10**5000,
    "",
    "   ",
    "x",
    "$5.50",
    "٣",
    "{0}",
    "x" * 10_000,
    [],
    {},
    [None],
    [[]],
    [{}],
    {"a": {"b": []}},
    {1: "not a string key"},
]

REASON_SHAPE = re.compile(r"^(event|[A-Za-z_]+)(\.[A-Za-z_]+|\[\d+\])*: \S.*$")
PYDANTIC_WORDING = ("Input should", "pydantic", "Value error", "errors.pydantic.dev", "validation error")


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document (except the root)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*path, key)
        yield from _paths(child, (*path, key))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copied = copy.deepcopy(document)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return copied


def _removed(document: Any, path: tuple[Any, ...]) -> Any:
    copied = copy.deepcopy(document)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return copied


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 4 else 5)
    if choice == 0:
        return rng.choice(WEIRD_VALUES[:10])
    if choice == 1:
        return rng.choice(["Order Completed", "track", "identify", "USD", "5.50", "2", "", "sku"])
    if choice == 2:
        return rng.uniform(-10, 10)
    if choice == 3:
        return rng.randrange(-3, 5)
    if choice == 4:
        return rng.choice([None, True, False])
    if choice == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = ["type", "event", "properties", "context", "products", "items", "price", "quantity", "sku", "x"]
    keys += ["cart_id", "order_id", "currency", "traits", "email", "ip", "consent", "canonical", "marketing"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _assert_well_behaved(event: Any) -> bool:
    """classify_event and map_order succeed or raise InvalidEvent with readable reasons.

    Returns whether map_order produced an order.
    """
    try:
        mapping.classify_event(event)
    except mapping.InvalidEvent as refused:
        _assert_readable(refused)
    mapping.consent_denied(event if isinstance(event, dict) else {}, "marketing")
    try:
        order = mapping.map_order(event)
    except mapping.InvalidEvent as refused:
        _assert_readable(refused)
        return False
    _assert_sendable(order)
    return True


def _assert_readable(refused: mapping.InvalidEvent) -> None:
    assert refused.reasons
    assert str(refused) == "; ".join(refused.reasons)
    for reason in refused.reasons:
        assert REASON_SHAPE.match(reason), reason
        assert len(reason) < 200, reason
        assert not any(words in reason for words in PYDANTIC_WORDING), reason


def _assert_sendable(order: mapping.RefersionOrder) -> None:
    raw = order.to_json_bytes()
    body = json.loads(raw)
    assert b"null" not in raw.replace(b'"null"', b"")
    assert b"NaN" not in raw
    assert b"Infinity" not in raw
    assert body["items"]
    assert body.get("customer", True)
    json.dumps(order.to_log_dict(), allow_nan=False)


def _mutations(event: dict[str, Any]) -> Iterator[Any]:
    for path in _paths(event):
        yield _removed(event, path)
        for value in WEIRD_VALUES:
            yield _replaced(event, path, value)


def test_given_the_seed_event_with_any_field_broken_when_handled_then_nothing_crashes(
    seed_event: dict[str, Any],
) -> None:
    outcomes = [_assert_well_behaved(event) for event in _mutations(seed_event)]

    assert len(outcomes) > 500
    assert any(outcomes)  # many fields are optional: some breakages still map
    assert not all(outcomes)


def test_given_random_junk_grafted_into_the_seed_event_when_handled_then_nothing_crashes(
    seed_event: dict[str, Any],
) -> None:
    rng = random.Random(7)
    for _ in range(1500):
        event = seed_event
        for _ in range(rng.randrange(1, 4)):
            event = _replaced(event, rng.choice(list(_paths(event))), _random_json(rng))
        _assert_well_behaved(event)


NON_EVENTS = [*WEIRD_VALUES, (), {"properties": {"products": [[[[[]]]]]}}]


@pytest.mark.parametrize("event", NON_EVENTS, ids=[f"value-{index}" for index in range(len(NON_EVENTS))])
def test_given_a_non_event_value_when_handled_then_nothing_crashes(event: Any) -> None:
    _assert_well_behaved(event)


def test_given_random_json_documents_when_handled_then_nothing_crashes() -> None:
    rng = random.Random(20261120)
    for _ in range(1500):
        _assert_well_behaved(_random_json(rng))


def test_given_deeply_nested_junk_when_handled_then_nothing_crashes() -> None:
    junk: Any = []
    for _ in range(500):
        junk = [junk]
    _assert_well_behaved({"type": "track", "event": "Order Completed", "properties": junk, "context": junk})
    _assert_well_behaved({"event": "Order Completed", "properties": {"products": junk, "coupon": junk}})
