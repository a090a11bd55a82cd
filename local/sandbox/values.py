"""The sandbox's public value types: a scripted ``Reply``, request ``Headers`` and a ``Received`` request."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Literal
from urllib.parse import urlsplit

PATH: Final = "/tracker/orders/paid"
# Refersion's REST API (CONTRACT §9): the sandbox serves it under this prefix; ``api_url`` ends with it.
API_PREFIX: Final = "/v2"
CANCEL_PATH: Final = API_PREFIX + "/conversion/cancel"
CONTROL_PREFIX: Final = "/_sandbox/"
FAULTS: Final = ("ok", "500", "503", "429", "timeout", "drop_before", "drop_after", "slow")

_SECRET_HEADER: Final = "refersion-secret-key"

Drop = Literal["before", "after"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    ``body=None`` gives the sandbox's normal JSON body for ``status``. ``delay`` is waited before
    answering. ``drop="before"`` closes the connection without answering and without accepting the
    order; ``drop="after"`` processes (accepts, when valid) the order and then closes without answering.
    """

    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: Drop | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 200 <= self.status <= 599:
            raise ValueError(f"Reply.status must be an int in 200..599, got {self.status!r}")
        if not math.isfinite(self.delay) or self.delay < 0:
            raise ValueError(f"Reply.delay must be a finite number >= 0, got {self.delay!r}")
        if self.drop not in (None, "before", "after"):
            raise ValueError(f"Reply.drop must be None, 'before' or 'after', got {self.drop!r}")
        if self.body is not None and not isinstance(self.body, bytes):
            raise TypeError("Reply.body must be bytes or None")
        headers = dict(self.headers)
        for name, value in headers.items():
            if not isinstance(name, str) or not isinstance(value, str) or "\n" in name + value:
                raise ValueError(f"Reply.headers must map str to str without newlines, got {name!r}")
        object.__setattr__(self, "headers", MappingProxyType(headers))


class Headers(Mapping[str, str]):
    """Request headers: original names and order kept, case-insensitive lookup, secret key masked in repr."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(items)

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for key, _ in self._items:
            if key.lower() not in seen:
                seen.add(key.lower())
                yield key

    def __len__(self) -> int:
        return len({key.lower() for key, _ in self._items})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(key.lower() == name.lower() for key, _ in self._items)

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def __repr__(self) -> str:
        shown = [(k, "***" if k.lower() == _SECRET_HEADER else v) for k, v in self._items]
        return f"Headers({shown!r})"


@dataclass(frozen=True)
class Received:
    """One request as the sandbox saw it (control requests under /_sandbox/ are not recorded).

    ``status`` is the status answered, or None when no answer was sent (dropped before or after, or
    abandoned by ``stop()``). ``accepted`` is True when Refersion would have credited the order.
    ``fault`` names what replaced the normal answer: "script", "script_for", a fault-mix key, or None.
    """

    method: str
    path: str
    headers: Headers
    body: bytes
    status: int | None
    accepted: bool
    at: float
    connection_id: int
    order_id: str | None = None
    fault: str | None = None

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal)

    @property
    def route(self) -> str:
        """The path without its query: PATH for a paid order, CANCEL_PATH for a cancel."""
        return urlsplit(self.path).path
