"""Fault scripts: how one request is answered when a scripted ``Reply`` or the random fault mix applies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from local.sandbox.values import Drop, Reply

_SLOW_DELAY: Final = 0.2
_REPLY_FIELDS: Final = frozenset({"status", "delay", "drop", "headers", "body"})


@dataclass(frozen=True)
class Plan:
    """How to answer one request: ``status=None`` means the normal behaviour."""

    status: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: Drop | None = None
    label: str | None = None

    @classmethod
    def of(cls, reply: Reply, label: str) -> Plan:
        return cls(reply.status, reply.body, reply.headers, reply.delay, reply.drop, label)


# Every fault of the mix but "timeout" (whose delay is set with the mix) and "ok" (the normal answer).
_FIXED_FAULTS: Final[Mapping[str, Plan]] = {
    "500": Plan(status=500, label="500"),
    "503": Plan(status=503, label="503"),
    "429": Plan(status=429, headers={"Retry-After": "1"}, label="429"),
    "slow": Plan(delay=_SLOW_DELAY, label="slow"),
    "drop_before": Plan(drop="before", label="drop_before"),
    "drop_after": Plan(drop="after", label="drop_after"),
}


def fault_plan(name: str, fault_delay: float) -> Plan:
    """The plan for one fault of the mix (see ``RefersionSandbox.set_fault_mix``)."""
    if name == "timeout":
        return Plan(delay=fault_delay, label=name)
    return _FIXED_FAULTS.get(name) or Plan(label=name)  # "ok"


def replies_from_json(doc: Any) -> list[Reply]:
    """Replies sent to the control endpoint ``POST /_sandbox/script`` as JSON."""
    if not isinstance(doc, list):
        raise TypeError("expected a JSON list of replies")
    replies: list[Reply] = []
    for entry in doc:
        if not isinstance(entry, dict):
            raise TypeError("each reply must be a JSON object")
        unknown = set(entry) - _REPLY_FIELDS
        if unknown:
            raise ValueError(f"unknown reply fields: {sorted(unknown)}")
        body = entry.get("body")
        replies.append(
            Reply(
                status=int(entry.get("status", 200)),
                body=None if body is None else str(body).encode("utf-8"),
                headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
                delay=float(entry.get("delay", 0.0)),
                drop=entry.get("drop"),
            )
        )
    return replies
