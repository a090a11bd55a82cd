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
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import http.server
import ipaddress
import json
import logging
import math
import random
import re
import selectors
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from types import FrameType, MappingProxyType, TracebackType
from typing import Any, Final, Literal, Self, cast
from urllib.parse import urlsplit

__all__ = ["FAULTS", "PATH", "Headers", "Received", "RefersionSandbox", "Reply", "main"]

_log = logging.getLogger(__name__)

PATH: Final = "/tracker/orders/paid"
CONTROL_PREFIX: Final = "/_sandbox/"
FAULTS: Final = ("ok", "500", "503", "429", "timeout", "drop_before", "drop_after", "slow")

_SLOW_DELAY: Final = 0.2
_MAX_BODY: Final = 1024 * 1024
_HANDSHAKE_TIMEOUT: Final = 10.0
_IDLE_TIMEOUT: Final = 120.0
_STOP_JOIN_SECONDS: Final = 2.0
_THREAD_PREFIX: Final = "refersion-sandbox"
_UNAUTHORIZED: Final = {"error": "Unauthorized: invalid key pair"}
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_MONEY_FIELDS: Final = ("shipping", "tax", "discount")
_CUSTOMER_FIELDS: Final = ("email", "first_name", "last_name", "ip_address")
_SECRET_HEADER: Final = "refersion-secret-key"

Drop = Literal["before", "after"]


# --------------------------------------------------------------------------- public value types


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


# --------------------------------------------------------------------------- request evaluation


@dataclass(frozen=True)
class _Outcome:
    """What the normal (unscripted) behaviour answers."""

    status: int
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class _Plan:
    """How to answer one request: ``status=None`` means the normal behaviour."""

    status: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: Drop | None = None
    label: str | None = None

    @classmethod
    def of(cls, reply: Reply, label: str) -> _Plan:
        return cls(reply.status, reply.body, reply.headers, reply.delay, reply.drop, label)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _parse_json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)


def _order_id_of(body: bytes) -> str | None:
    try:
        doc = _parse_json(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    value = doc.get("order_id")
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    return None


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, Decimal | float) and math.isfinite(value)


def _is_identifier(value: object) -> bool:
    """A non-empty string, or an integer (sent as its string)."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(message: str, field_name: str | None) -> _Outcome:
    return _Outcome(400, {"error": message, "field": field_name})


def _validate_order(doc: Any) -> _Outcome | None:
    """The 400 answer for a malformed paid-order body, or None when Refersion would accept it."""
    if not isinstance(doc, dict):
        return _bad("request body must be a JSON object", None)
    cart_id = doc.get("cart_id")
    if cart_id is None:
        return _bad("cart_id is required", "cart_id")
    if not isinstance(cart_id, str) or not cart_id.strip():
        return _bad("cart_id must be a non-empty string", "cart_id")
    if len(cart_id) > 255:
        return _bad("cart_id must be at most 255 characters", "cart_id")
    if doc.get("order_id") is None:
        return _bad("order_id is required", "order_id")
    if not _is_identifier(doc["order_id"]):
        return _bad("order_id must be a non-empty string", "order_id")
    currency = doc.get("currency_code")
    if currency is None or currency == "":
        return _bad("currency_code is required", "currency_code")
    if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
        return _bad("currency_code must be a three-letter upper-case ISO 4217 code", "currency_code")
    for name in _MONEY_FIELDS:
        if name in doc and not _is_number(doc[name]):
            return _bad(f"{name} must be a plain JSON number (no currency symbol, not a string)", name)
    if "discount_code" in doc and not isinstance(doc["discount_code"], str):
        return _bad("discount_code must be a string", "discount_code")
    if "customer" in doc:
        customer = doc["customer"]
        if not isinstance(customer, dict):
            return _bad("customer must be an object", "customer")
        for name in _CUSTOMER_FIELDS:
            if name in customer and not isinstance(customer[name], str):
                return _bad(f"customer.{name} must be a string", f"customer.{name}")
    return _validate_items(doc.get("items"))


def _validate_items(items: Any) -> _Outcome | None:
    if items is None:
        return _bad("items is required", "items")
    if not isinstance(items, list) or not items:
        return _bad("items must be a non-empty list", "items")
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            return _bad(f"{where} must be an object", where)
        for name in ("sku", "price", "quantity"):
            if item.get(name) is None:
                return _bad(f"{where}.{name} is required", f"{where}.{name}")
        if not _is_identifier(item["sku"]):
            return _bad(f"{where}.sku must be a non-empty string", f"{where}.sku")
        if not _is_number(item["price"]):
            return _bad(
                f"{where}.price must be a plain JSON number (no currency symbol, not a string)",
                f"{where}.price",
            )
        quantity = item["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            return _bad(f"{where}.quantity must be a positive integer", f"{where}.quantity")
        if "name" in item and not isinstance(item["name"], str):
            return _bad(f"{where}.name must be a string", f"{where}.name")
    return None


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _evaluate(
    method: str, route: str, headers: Mapping[str, str], body: bytes, keys: tuple[str, str]
) -> _Outcome:
    """The normal behaviour of Refersion's endpoint for one request (pure)."""
    if route != PATH:
        return _Outcome(404, {"error": "Not Found"})
    if method != "POST":
        return _Outcome(405, {"error": "Method Not Allowed"}, {"Allow": "POST"})
    public_ok = _same(headers.get("Refersion-Public-Key"), keys[0])
    secret_ok = _same(headers.get("Refersion-Secret-Key"), keys[1])
    if not (public_ok and secret_ok):
        return _Outcome(401, _UNAUTHORIZED)
    media_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return _Outcome(400, {"error": "Content-Type must be application/json", "field": None})
    try:
        doc = _parse_json(body)
    except ValueError:  # includes UnicodeDecodeError and json.JSONDecodeError
        return _bad("request body is not valid JSON", None)
    problem = _validate_order(doc)
    if problem is not None:
        return problem
    return _Outcome(200, {"status": "ok", "order_id": str(doc["order_id"])})


def _default_payload(status: int, order_id: str | None) -> dict[str, Any]:
    if 200 <= status < 300:
        return {"status": "ok", "order_id": order_id}
    if status in (401, 403):
        return dict(_UNAUTHORIZED) if status == 401 else {"error": "Forbidden: invalid key pair"}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    return {"error": phrase}


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _FramingError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections and threads so stop() can end them all."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        sandbox: RefersionSandbox,
        address: tuple[str, int],
        ssl_context: ssl.SSLContext | None,
        stop_event: threading.Event,
    ) -> None:
        self.sandbox = sandbox
        self.stop_event = stop_event
        self.control_enabled = _is_loopback(address[0])
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, int] = {}
        self._workers: set[threading.Thread] = set()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        if ssl_context is not None:
            try:
                # Handshakes happen in the connection threads, so a stalled or failing client
                # can never block the accept loop.
                self.socket = ssl_context.wrap_socket(
                    self.socket, server_side=True, do_handshake_on_connect=False
                )
            except BaseException:
                self.server_close()
                raise

    def serve_until_stopped(self) -> None:
        """The accept loop. Unlike serve_forever(), it ends at once on wake() rather than on its next poll."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stop_event.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stop_event.is_set():
                        self._accept_one()

    def _accept_one(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:  # the client gave up before accept(), or the socket is closing
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can be slow.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        assert isinstance(request, socket.socket)
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection_id = self.sandbox._connection_opened()
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{_THREAD_PREFIX}-conn-{connection_id}",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[request] = connection_id
            self._workers.add(thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self._workers.discard(threading.current_thread())

    def connection_id(self, request: socket.socket) -> int:
        with self._conn_lock:
            return self._conns.get(request, 0)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._conn_lock:
                self._conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def abort_connections(self) -> None:
        """Shut down every open connection so blocked reads and writes return at once."""
        with self._conn_lock:
            for conn in self._conns:
                # The plain-socket shutdown, also for TLS sockets: no close_notify, just end it.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def live_threads(self) -> list[threading.Thread]:
        with self._conn_lock:
            return list(self._workers)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RefersionSandbox/1.0"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    connection_id = 0

    @property
    def _srv(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(_HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
        super().setup()
        self.connection_id = self._srv.connection_id(self.request)

    error_content_type = "application/json"
    error_message_format = '{"error": "%(message)s", "code": %(code)d}'

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        route = urlsplit(self.path).path
        try:
            body = self._read_body()
        except _FramingError as exc:
            self.close_connection = True
            if exc.status is not None:
                self._write(exc.status, _dumps({"error": exc.message}), {})
            return
        if self._srv.control_enabled and route.startswith(CONTROL_PREFIX):
            self._control(route, body)
        else:
            self._webhook(route, body)

    def _read_body(self) -> bytes:
        encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if encoding:
            if encoding != "chunked":
                raise _FramingError(501, f"Transfer-Encoding {encoding} is not supported")
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _FramingError(400, "invalid Content-Length") from None
        if length < 0:
            raise _FramingError(400, "invalid Content-Length")
        if length > _MAX_BODY:
            raise _FramingError(413, "request body too large")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _FramingError(None, "client closed the connection mid-body")
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _FramingError(400, "invalid chunk size") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if size < 0 or total > _MAX_BODY:
                raise _FramingError(413, "request body too large")
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise _FramingError(None, "client closed the connection mid-body")
            parts.append(chunk)
            self.rfile.readline(1024)

    def _write(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        given = {name.lower() for name in headers}
        no_body = status in (204, 304)
        try:
            self.send_response(status)
            if "content-type" not in given:
                self.send_header("Content-Type", "application/json")
            if "content-length" not in given and not no_body:
                self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            if self.close_connection and "connection" not in given:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and not no_body:
                self.wfile.write(body)
        except OSError:
            _log.debug("client went away before the answer was written", exc_info=True)
            self.close_connection = True

    # ---------------------------------------------------------------- the webhook

    def _webhook(self, route: str, body: bytes) -> None:
        sandbox = self._srv.sandbox
        arrived = time.monotonic()
        headers = Headers(self.headers.items())
        order_id = _order_id_of(body)
        keys, latency = sandbox._request_started()
        record: Received | None = None
        finished = False
        try:
            outcome = _evaluate(self.command, route, headers, body, keys)
            plan = sandbox._next_plan(order_id)

            def received(status: int | None, accepted: bool) -> Received:
                return Received(
                    method=self.command,
                    path=self.path,
                    headers=headers,
                    body=body,
                    status=status,
                    accepted=accepted,
                    at=arrived,
                    connection_id=self.connection_id,
                    order_id=order_id,
                    fault=plan.label,
                )

            wait = latency + plan.delay
            if wait > 0 and self._srv.stop_event.wait(wait):
                record = received(None, False)  # stopping: abandon without answering
                self.close_connection = True
                return
            status = outcome.status if plan.status is None else plan.status
            answered = plan.drop is None
            accepted = outcome.valid and (plan.drop == "after" or (answered and 200 <= status < 300))
            record = received(status if answered else None, accepted)
            if not answered:
                self.close_connection = True
                return
            if plan.status is None or plan.status == outcome.status:
                payload: Mapping[str, Any] = outcome.payload
                reply_headers = {**outcome.headers, **plan.headers}
            else:
                payload = _default_payload(status, order_id)
                reply_headers = dict(plan.headers)
            reply_body = plan.body if plan.body is not None else _dumps(payload)
            # Record before answering, so a client that got its answer can assert on received().
            finished = True
            sandbox._request_finished(record)
            self._write(status, reply_body, reply_headers)
        finally:
            if not finished:
                sandbox._request_finished(record)

    # ---------------------------------------------------------------- control endpoints

    def _control(self, route: str, body: bytes) -> None:
        sandbox = self._srv.sandbox
        name = route[len(CONTROL_PREFIX) :].rstrip("/")
        method = self.command
        try:
            doc: Any = json.loads(body) if body.strip() else None
            if name == "received" and method == "GET":
                payload: Any = [
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
            elif name == "stats" and method == "GET":
                payload = {
                    "received": len(sandbox.received()),
                    "accepted": len(sandbox.accepted()),
                    "duplicates": sandbox.duplicates(),
                    "connections_opened": sandbox.connections_opened(),
                    "in_flight": sandbox.in_flight(),
                }
            elif name == "reset" and method == "POST":
                sandbox.reset()
                payload = {"status": "ok"}
            elif name == "script" and method == "POST":
                if isinstance(doc, dict) and "order_id" in doc:
                    sandbox.script_for(str(doc["order_id"]), *_replies_from_json(doc.get("replies")))
                else:
                    sandbox.script(*_replies_from_json(doc))
                payload = {"status": "ok"}
            elif name == "faults" and method == "POST":
                if not isinstance(doc, dict):
                    raise ValueError("expected {weights, seed, fault_delay}")
                sandbox.set_fault_mix(
                    doc.get("weights") or {},
                    int(doc.get("seed", 0)),
                    fault_delay=float(doc.get("fault_delay", 2.0)),
                )
                payload = {"status": "ok"}
            elif name == "keys" and method == "POST":
                if not isinstance(doc, dict):
                    raise ValueError("expected {public_key, secret_key}")
                sandbox.set_keys(str(doc["public_key"]), str(doc["secret_key"]))
                payload = {"status": "ok"}
            elif name == "latency" and method == "POST":
                if not isinstance(doc, dict):
                    raise ValueError("expected {seconds}")
                sandbox.set_latency(float(doc["seconds"]))
                payload = {"status": "ok"}
            else:
                self._write(404, _dumps({"error": f"no control endpoint {method} {route}"}), {})
                return
        except (ValueError, TypeError, KeyError) as exc:
            self._write(400, _dumps({"error": f"bad control request: {exc}"}), {})
            return
        self._write(200, _dumps(payload), {})


def _replies_from_json(doc: Any) -> list[Reply]:
    if not isinstance(doc, list):
        raise TypeError("expected a JSON list of replies")
    replies: list[Reply] = []
    for entry in doc:
        if not isinstance(entry, dict):
            raise TypeError("each reply must be a JSON object")
        unknown = set(entry) - {"status", "delay", "drop", "headers", "body"}
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


# --------------------------------------------------------------------------- the sandbox


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
    ) -> None:
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._keys = (public_key, secret_key)
        self._latency = self._check_seconds(latency)
        self._script: deque[Reply] = deque()
        self._script_for: dict[str, deque[Reply]] = {}
        self._faults: tuple[tuple[str, ...], tuple[float, ...]] | None = None
        self._rng = random.Random(0)
        self._fault_delay = 2.0
        self._received: list[Received] = []
        self._connections_opened = 0
        self._in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Bind and serve in a background thread. A restart binds the same port as before."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server(self, (self._host, self._port), self._ssl_context, threading.Event())
            self._port = server.server_port
            thread = threading.Thread(
                target=server.serve_until_stopped,
                name=f"{_THREAD_PREFIX}-{self._port}",
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

    # ---------------------------------------------------------------- behaviour

    def set_keys(self, public_key: str, secret_key: str) -> None:
        """Rotate the key pair: from now on the old pair gets 401."""
        with self._lock:
            self._keys = (public_key, secret_key)

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
        """Requests Refersion would have credited (valid, and answered 2xx or dropped after processing)."""
        with self._lock:
            return [r for r in self._received if r.accepted]

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
        _log.debug(
            "%s %s order_id=%s fault=%s -> status=%s accepted=%s",
            record.method,
            record.path,
            record.order_id,
            record.fault,
            record.status,
            record.accepted,
        )

    def _next_plan(self, order_id: str | None) -> _Plan:
        with self._lock:
            queue = self._script_for.get(order_id) if order_id is not None else None
            if queue:
                return _Plan.of(queue.popleft(), "script_for")
            if self._script:
                return _Plan.of(self._script.popleft(), "script")
            if self._faults is None:
                return _Plan()
            names, weights = self._faults
            name = self._rng.choices(names, weights=weights)[0]
            fault_delay = self._fault_delay
        return _fault_plan(name, fault_delay)

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


def _fault_plan(name: str, fault_delay: float) -> _Plan:
    if name in ("500", "503"):
        return _Plan(status=int(name), label=name)
    if name == "429":
        return _Plan(status=429, headers={"Retry-After": "1"}, label=name)
    if name == "timeout":
        return _Plan(delay=fault_delay, label=name)
    if name == "slow":
        return _Plan(delay=_SLOW_DELAY, label=name)
    if name == "drop_before":
        return _Plan(drop="before", label=name)
    if name == "drop_after":
        return _Plan(drop="after", label=name)
    return _Plan(label=name)  # "ok"


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.sandbox",
        description="Serve a local stand-in for Refersion's paid-order webhook until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--public-key", default="pub_test")
    parser.add_argument("--secret-key", default="sec_test")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key (when not inside --tls-cert)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    context: ssl.SSLContext | None = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    elif args.tls_key:
        parser.error("--tls-key needs --tls-cert")

    sandbox = RefersionSandbox(
        args.public_key,
        args.secret_key,
        host=args.host,
        port=args.port,
        ssl_context=context,
        latency=args.latency,
    )
    stopping = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    with sandbox:
        print(f"Refersion sandbox listening on {sandbox.url}", flush=True)
        if _is_loopback(args.host):
            print(f"control endpoints under {sandbox.base_url}{CONTROL_PREFIX}", flush=True)
        else:
            print("control endpoints disabled (not bound to loopback)", flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("Refersion sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
