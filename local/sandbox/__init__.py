"""A local stand-in for Refersion's paid-order webhook (``POST /tracker/orders/paid``) and its REST
API's cancel (``POST /v2/conversion/cancel``, base URL ``sandbox.api_url``).

Used by the test suite, the demo, the fault-injection soak and the benchmark. Standard library only.

In-process use::

    with RefersionSandbox("pub_test", "sec_test") as sandbox:
        ...  # POST to sandbox.url
        sandbox.script(Reply(status=429, headers={"Retry-After": "30"}))
        sandbox.script_for("20150401102883", Reply(drop="after"))
        sandbox.set_fault_mix({"ok": 8, "503": 1, "drop_after": 1}, seed=7)
        assert sandbox.duplicates() == {}

By hand (serves until Ctrl-C)::

    python -m local.sandbox --port 8080 --public-key pub --secret-key sec

Normal behaviour follows Refersion's documented contract (CONTRACT §5 and the seed document): 401 for a
missing or wrong key pair, 400 naming the field for a missing ``cart_id``/``order_id``/``currency_code``
or a malformed ``items`` entry, otherwise 200 and the order is recorded as accepted.

The cancel (CONTRACT §9) checks the same key pair (401 ``{"error": "Invalid API credentials (error 2)."}``)
and the body ``{"order_id": str, "items": [{"sku": str, "price": number, "quantity": int >= 1}]}`` (400
naming the problem; 429 for more than 50 items); then 422 ``{"errors": ["Invalid order ID (error 5)"]}``
when no paid order with that id was accepted, or it was accepted less than ``processing_delay`` seconds
ago; otherwise 200 ``{"conversion_id": "conv_..."}`` and the cancel is applied: ``net_quantities()``
gives, per order and sku, what was credited less what was cancelled. ``accepted()`` lists paid orders
only; ``cancels()`` the cancels applied. Scripts and the fault mix apply to both paths.

Scripted replies (``script``/``script_for``) and the random fault mix replace the *answer*; whether an
order counts as *accepted* (credited by Refersion) still requires a request the normal behaviour would
accept, answered with a 2xx or dropped ``"after"`` processing. A delayed reply is processed when its
delay ends (a client that timed out in the meantime does not undo it), unless ``stop()`` interrupts it.

Control endpoints for another process (bound to loopback only, no keys)::

    GET  /_sandbox/received   [{method, path, status, accepted, order_id, fault, connection_id, body}, ...]
    GET  /_sandbox/stats      {received, accepted, cancels, duplicates, connections_opened, in_flight}
    GET  /_sandbox/net        {order_id: {sku: net quantity}}
    POST /_sandbox/processing {"seconds": 30}   (cancels of an order accepted since get 422)
    POST /_sandbox/reset
    POST /_sandbox/script     [{status, delay, drop, headers, body}, ...]
                              or {"order_id": "...", "replies": [...]} for one order
    POST /_sandbox/faults     {"weights": {"ok": 9, "503": 1}, "seed": 1, "fault_delay": 2.0}
    POST /_sandbox/keys       {"public_key": "...", "secret_key": "..."}
    POST /_sandbox/latency    {"seconds": 0.05}

Modules: ``values`` (Reply, Headers, Received, PATH, FAULTS), ``contract`` (Refersion's normal answer:
key pair and body), ``faults`` (scripted replies and the fault mix), ``core`` (RefersionSandbox),
``server``/``handler``/``control`` (HTTP plumbing and control endpoints), ``cli`` (``python -m``).
"""

from local.sandbox.cli import main
from local.sandbox.core import RefersionSandbox
from local.sandbox.values import (
    API_PREFIX,
    CANCEL_PATH,
    CONTROL_PREFIX,
    FAULTS,
    PATH,
    Headers,
    Received,
    Reply,
)

__all__ = [
    "API_PREFIX",
    "CANCEL_PATH",
    "CONTROL_PREFIX",
    "FAULTS",
    "PATH",
    "Headers",
    "Received",
    "RefersionSandbox",
    "Reply",
    "main",
]
