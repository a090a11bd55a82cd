"""``RefersionSandbox``: its state (key pair, scripts, fault mix, requests received) and lifecycle."""

from __future__ import annotations

import logging
import math
import random
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Final, Self

from local.sandbox.contract import (
    INVALID_ORDER_ID,
    Outcome,
    check_cancel,
    conversion_id_of,
    evaluate,
)
from local.sandbox.faults import Plan, fault_plan
from local.sandbox.server import THREAD_PREFIX, SandboxServer
from local.sandbox.values import API_PREFIX, CANCEL_PATH, FAULTS, PATH, Received, Reply
from local.sandbox.webhooks import ConversionWebhooks

_log = logging.getLogger("local.sandbox")

_STOP_JOIN_SECONDS: Final = 2.0


class RefersionSandbox:
    """A local Refersion paid-order webhook. Thread-safe; start()/stop() or use as a context manager."""

    def __init__(
        self,
        public_key: str = "pub_test",
        secret_key: str = "sec_test",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        latency: float = 0.0,
        processing_delay: float = 0.0,
    ) -> None:
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._keys = (public_key, secret_key)
        self._latency = self._check_seconds(latency)
        # How long after a paid order is accepted a cancel of it still gets 422 (Refersion processes
        # orders asynchronously, CONTRACT §9).
        self._processing_delay = self._check_seconds(processing_delay)
        self._script: deque[Reply] = deque()
        self._script_for: dict[str, deque[Reply]] = {}
        self._faults: tuple[tuple[str, ...], tuple[float, ...]] | None = None
        self._rng = random.Random(0)
        self._fault_delay = 2.0
        self._received: list[Received] = []
        self._connections_opened = 0
        self._in_flight = 0
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        # Refersion's conversion webhooks for referred carts (webhooks.py): configure() to turn them on.
        self.webhooks = ConversionWebhooks()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Bind and serve in a background thread. A restart binds the same port as before."""
        with self._lock:
            if self._server is not None:
                return self
            server = SandboxServer(self, (self._host, self._port), self._ssl_context, threading.Event())
            self._port = server.server_port
            thread = threading.Thread(
                target=server.serve_until_stopped,
                name=f"{THREAD_PREFIX}-{self._port}",
                daemon=True,
            )
            self._server, self._thread = server, thread
        thread.start()
        _log.debug("Refersion sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving: close the listening socket, end open connections and abandon delayed replies."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        self.webhooks.stop()
        if server is None or thread is None:
            return
        deadline = time.monotonic() + _STOP_JOIN_SECONDS
        server.stop_event.set()  # ends the accept loop, and wakes replies sleeping in a delay
        server.wake()
        thread.join(_STOP_JOIN_SECONDS)
        server.server_close()  # the listening socket
        server.abort_connections()  # idle keep-alive connections and blocked reads
        for worker in server.live_threads():
            worker.join(max(0.0, deadline - time.monotonic()))
        leftovers = [t.name for t in server.live_threads()]
        if leftovers:
            _log.warning("sandbox threads still running after stop(): %s", leftovers)
        with self._lock:
            self._in_flight = 0
            self._bump()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._server is not None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the sandbox has not been started yet, so it has no port")
        return self._port

    @property
    def base_url(self) -> str:
        host = self._host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + PATH

    @property
    def api_url(self) -> str:
        """REFERSION_API_URL for the relay: the cancel endpoint is ``{api_url}/conversion/cancel``."""
        return self.base_url + API_PREFIX

    # ---------------------------------------------------------------- behaviour

    def set_keys(self, public_key: str, secret_key: str) -> None:
        """Rotate the key pair: from now on the old pair gets 401."""
        with self._lock:
            self._keys = (public_key, secret_key)

    def set_processing_delay(self, seconds: float) -> None:
        """For this long after a paid order is accepted, a cancel of it is answered 422 Invalid order ID."""
        seconds = self._check_seconds(seconds)
        with self._lock:
            self._processing_delay = seconds

    def set_latency(self, seconds: float) -> None:
        """Added before every answer (also errors, scripted replies and drops)."""
        seconds = self._check_seconds(seconds)
        with self._lock:
            self._latency = seconds

    def script(self, *replies: Reply) -> None:
        """Queue replies (FIFO) for the next requests, whatever their order_id."""
        self._check_replies(replies)
        with self._lock:
            self._script.extend(replies)

    def script_for(self, order_id: str, *replies: Reply) -> None:
        """Queue replies (FIFO) for the next requests carrying this order_id; before script()."""
        self._check_replies(replies)
        with self._lock:
            self._script_for.setdefault(str(order_id), deque()).extend(replies)

    def set_fault_mix(self, weights: Mapping[str, float], seed: int, *, fault_delay: float = 2.0) -> None:
        """Random faults for soaks, deterministic given the seed and the order of requests.

        Keys among FAULTS: "ok" (normal), "500", "503", "429" (Retry-After: 1), "timeout" (processed
        normally but answered after ``fault_delay`` seconds), "drop_before", "drop_after", "slow"
        (0.2 s, then normal). Empty weights turn the mix off.
        """
        unknown = set(weights) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault names {sorted(unknown)}; expected among {FAULTS}")
        names = tuple(name for name in FAULTS if name in weights)
        values = tuple(float(weights[name]) for name in names)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("fault weights must be finite numbers >= 0")
        if names and sum(values) <= 0:
            raise ValueError("at least one fault weight must be positive")
        fault_delay = self._check_seconds(fault_delay)
        with self._lock:
            self._faults = (names, values) if names else None
            self._rng = random.Random(seed)
            self._fault_delay = fault_delay

    def clear_faults(self) -> None:
        """Drop pending scripts and the fault mix."""
        with self._lock:
            self._script.clear()
            self._script_for.clear()
            self._faults = None

    def reset(self) -> None:
        """clear_faults() and forget received requests (connections_opened is kept)."""
        with self._lock:
            self._script.clear()
            self._script_for.clear()
            self._faults = None
            self._received.clear()
            self._bump()

    # ---------------------------------------------------------------- observations

    def received(self) -> list[Received]:
        """Every request (control endpoints excepted), in the order they were answered or dropped."""
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Received]:
        """Paid orders Refersion would have credited (valid, and answered 2xx or dropped after processing)."""
        with self._lock:
            return [r for r in self._received if r.accepted and r.route == PATH]

    def cancels(self) -> list[Received]:
        """Cancels Refersion would have applied (valid, for a conversion, answered 2xx or dropped after)."""
        with self._lock:
            return [r for r in self._received if r.accepted and r.route == CANCEL_PATH]

    def net_quantities(self) -> dict[str, dict[str, int]]:
        """order_id -> sku -> quantity credited by accepted paid orders less accepted cancels.

        Each accepted post and each accepted cancel counts (Refersion de-duplicates neither), so a
        double credit or a cancel applied twice shows here.
        """
        net: dict[str, dict[str, int]] = {}
        for record in self.accepted():
            for sku, quantity in _lines_of(record):
                per_sku = net.setdefault(record.order_id or "", {})
                per_sku[sku] = per_sku.get(sku, 0) + quantity
        for record in self.cancels():
            for sku, quantity in _lines_of(record):
                per_sku = net.setdefault(record.order_id or "", {})
                per_sku[sku] = per_sku.get(sku, 0) - quantity
        return net

    def accepted_order_ids(self) -> list[str]:
        return [r.order_id or "" for r in self.accepted()]

    def duplicates(self) -> dict[str, int]:
        """order_id -> extra times accepted, for ids accepted more than once."""
        counts = Counter(self.accepted_order_ids())
        return {order_id: n - 1 for order_id, n in counts.items() if n > 1}

    def connections_opened(self) -> int:
        """TCP connections accepted so far (including failed TLS handshakes)."""
        with self._lock:
            return self._connections_opened

    def in_flight(self) -> int:
        """Requests read but not answered yet."""
        with self._lock:
            return self._in_flight

    def wait_for(self, predicate: Callable[[RefersionSandbox], bool], timeout: float) -> bool:
        """Wait until predicate(self) is true; False on timeout. Re-checked on every change."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._version
            if predicate(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                if self._version == seen:
                    self._changed.wait(min(remaining, 0.1))

    # ---------------------------------------------------------------- called by the handler

    def _bump(self) -> None:  # with self._lock held
        self._version += 1
        self._changed.notify_all()

    def _connection_opened(self) -> int:
        with self._lock:
            self._connections_opened += 1
            self._bump()
            return self._connections_opened

    def _request_started(self) -> tuple[tuple[str, str], float]:
        with self._lock:
            self._in_flight += 1
            self._bump()
            return self._keys, self._latency

    def _request_finished(self, record: Received | None) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if record is not None:
                self._received.append(record)
            self._bump()
        if record is None:
            return
        if record.accepted:
            self.webhooks.order_accepted(record.body)
        _log.debug(
            "%s %s order_id=%s fault=%s -> status=%s accepted=%s",
            record.method,
            record.path,
            record.order_id,
            record.fault,
            record.status,
            record.accepted,
        )

    def _evaluate(
        self, method: str, route: str, headers: Mapping[str, str], body: bytes, keys: tuple[str, str]
    ) -> Outcome:
        """The normal answer: the paid-order contract, or the cancel contract and the conversions known."""
        if route != CANCEL_PATH:
            return evaluate(method, route, headers, body, keys)
        checked = check_cancel(method, headers, body, keys)
        if isinstance(checked, Outcome):
            return checked
        now = time.monotonic()
        with self._lock:
            credited = [
                r.at
                for r in self._received
                if r.accepted and r.route == PATH and r.order_id == checked.order_id
            ]
            processing = self._processing_delay
        if not credited or now < min(credited) + processing:
            return Outcome(422, INVALID_ORDER_ID)
        return Outcome(200, {"conversion_id": conversion_id_of(checked.order_id)})

    def _next_plan(self, order_id: str | None) -> Plan:
        with self._lock:
            queue = self._script_for.get(order_id) if order_id is not None else None
            if queue:
                return Plan.of(queue.popleft(), "script_for")
            if self._script:
                return Plan.of(self._script.popleft(), "script")
            if self._faults is None:
                return Plan()
            names, weights = self._faults
            name = self._rng.choices(names, weights=weights)[0]
            fault_delay = self._fault_delay
        return fault_plan(name, fault_delay)

    @staticmethod
    def _check_seconds(seconds: float) -> float:
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        return seconds

    @staticmethod
    def _check_replies(replies: Sequence[Reply]) -> None:
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected Reply, got {type(reply).__name__}")


def _lines_of(record: Received) -> list[tuple[str, int]]:
    """(sku, quantity) of each item of an accepted body (validated on arrival, so well-formed)."""
    try:
        doc = record.json()
    except ValueError:
        return []
    return [(str(item["sku"]), int(item["quantity"])) for item in doc.get("items", [])]
