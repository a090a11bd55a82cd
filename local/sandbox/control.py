"""Control endpoints under ``/_sandbox/`` (loopback only, no keys): drive a sandbox from another process."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from local.sandbox.faults import replies_from_json
from local.sandbox.values import CONTROL_PREFIX

if TYPE_CHECKING:
    from local.sandbox.core import RefersionSandbox

_OK: Final = {"status": "ok"}


def _received(sandbox: RefersionSandbox, doc: Any) -> Any:
    return [
        {
            "method": r.method,
            "path": r.path,
            "status": r.status,
            "accepted": r.accepted,
            "order_id": r.order_id,
            "fault": r.fault,
            "connection_id": r.connection_id,
            "body": r.body.decode("utf-8", "replace"),
        }
        for r in sandbox.received()
    ]


def _stats(sandbox: RefersionSandbox, doc: Any) -> Any:
    return {
        "received": len(sandbox.received()),
        "accepted": len(sandbox.accepted()),
        "cancels": len(sandbox.cancels()),
        "duplicates": sandbox.duplicates(),
        "connections_opened": sandbox.connections_opened(),
        "in_flight": sandbox.in_flight(),
    }


def _reset(sandbox: RefersionSandbox, doc: Any) -> Any:
    sandbox.reset()
    return _OK


def _script(sandbox: RefersionSandbox, doc: Any) -> Any:
    if isinstance(doc, dict) and "order_id" in doc:
        sandbox.script_for(str(doc["order_id"]), *replies_from_json(doc.get("replies")))
    else:
        sandbox.script(*replies_from_json(doc))
    return _OK


def _faults(sandbox: RefersionSandbox, doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise TypeError("expected {weights, seed, fault_delay}")
    sandbox.set_fault_mix(
        doc.get("weights") or {},
        int(doc.get("seed", 0)),
        fault_delay=float(doc.get("fault_delay", 2.0)),
    )
    return _OK


def _keys(sandbox: RefersionSandbox, doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise TypeError("expected {public_key, secret_key}")
    sandbox.set_keys(str(doc["public_key"]), str(doc["secret_key"]))
    return _OK


def _net(sandbox: RefersionSandbox, doc: Any) -> Any:
    return sandbox.net_quantities()


def _processing(sandbox: RefersionSandbox, doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise TypeError("expected {seconds}")
    sandbox.set_processing_delay(float(doc["seconds"]))
    return _OK


def _latency(sandbox: RefersionSandbox, doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise TypeError("expected {seconds}")
    sandbox.set_latency(float(doc["seconds"]))
    return _OK


def _clicks(sandbox: RefersionSandbox, doc: Any) -> Any:
    """Record a click for a cart; optional "webhook_url" and "delay" configure the conversion webhooks."""
    if not isinstance(doc, dict):
        raise TypeError("expected {cart_id} (and optionally webhook_url, delay)")
    if "webhook_url" in doc:
        sandbox.webhooks.configure(doc["webhook_url"], float(doc.get("delay", 0.0)))
    if "cart_id" in doc:
        sandbox.webhooks.record_click(str(doc["cart_id"]))
    return _OK


_ACTIONS: Final[Mapping[tuple[str, str], Callable[[RefersionSandbox, Any], Any]]] = {
    ("received", "GET"): _received,
    ("stats", "GET"): _stats,
    ("reset", "POST"): _reset,
    ("script", "POST"): _script,
    ("faults", "POST"): _faults,
    ("keys", "POST"): _keys,
    ("latency", "POST"): _latency,
    ("net", "GET"): _net,
    ("processing", "POST"): _processing,
    ("clicks", "POST"): _clicks,
}


def answer_control(sandbox: RefersionSandbox, method: str, route: str, body: bytes) -> tuple[int, Any]:
    """(status, JSON payload) for one control request: 200, 404 for no such endpoint, 400 for a bad one."""
    name = route[len(CONTROL_PREFIX) :].rstrip("/")
    try:
        doc: Any = json.loads(body) if body.strip() else None
        action = _ACTIONS.get((name, method))
        payload = None if action is None else action(sandbox, doc)
    except (ValueError, TypeError, KeyError) as exc:
        return 400, {"error": f"bad control request: {exc}"}
    if action is None:
        return 404, {"error": f"no control endpoint {method} {route}"}
    return 200, payload
