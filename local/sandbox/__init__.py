"""A local stand-in for Refersion's paid-order webhook (``POST /tracker/orders/paid``).

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

Normal behaviour follows Refersion's documented contract (SPEC §5 and the seed document): 401 for a
missing or wrong key pair, 400 naming the field for a missing ``cart_id``/``order_id``/``currency_code``
or a malformed ``items`` entry, otherwise 200 and the order is recorded as accepted.

Scripted replies (``script``/``script_for``) and the random fault mix replace the *answer*; whether an
order counts as *accepted* (credited by Refersion) still requires a request the normal behaviour would
accept, answered with a 2xx or dropped ``"after"`` processing. A delayed reply is processed when its
delay ends (a client that timed out in the meantime does not undo it), unless ``stop()`` interrupts it.

Control endpoints for another process (bound to loopback only, no keys)::

    GET  /_sandbox/received   [{method, path, status, accepted, order_id, fault, connection_id, body}, ...]
    GET  /_sandbox/stats      {received, accepted, duplicates, connections_opened, in_flight}
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
from local.sandbox.values import CONTROL_PREFIX, FAULTS, PATH, Headers, Received, Reply

__all__ = ["CONTROL_PREFIX", "FAULTS", "PATH", "Headers", "Received", "RefersionSandbox", "Reply", "main"]
