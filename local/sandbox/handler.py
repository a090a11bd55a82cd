"""One HTTP connection to the sandbox: request framing, then the webhook or a control endpoint."""

from __future__ import annotations

import http.server
import logging
import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from local.sandbox.contract import Outcome, default_payload, dumps, order_id_of
from local.sandbox.control import answer_control
from local.sandbox.faults import Plan
from local.sandbox.values import CONTROL_PREFIX, Headers, Received

if TYPE_CHECKING:
    from local.sandbox.server import SandboxServer

_log = logging.getLogger("local.sandbox")

_MAX_BODY: Final = 1024 * 1024
_HANDSHAKE_TIMEOUT: Final = 10.0
_IDLE_TIMEOUT: Final = 120.0


def _reply(
    outcome: Outcome, plan: Plan, status: int, order_id: str | None, route: str
) -> tuple[bytes, dict[str, str]]:
    """Body and headers answered: the normal ones, or the plan's (with a default body for its status)."""
    if plan.status is None or plan.status == outcome.status:
        payload: Mapping[str, Any] = outcome.payload
        headers = {**outcome.headers, **plan.headers}
    else:
        payload = default_payload(status, order_id, route)
        headers = dict(plan.headers)
    return (plan.body if plan.body is not None else dumps(payload)), headers


class _FramingError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SandboxHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RefersionSandbox/1.0"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    connection_id = 0

    @property
    def _srv(self) -> SandboxServer:
        return cast("SandboxServer", self.server)

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
                self._write(exc.status, dumps({"error": exc.message}), {})
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
        order_id = order_id_of(body)
        keys, latency = sandbox._request_started()
        record: Received | None = None
        finished = False
        try:
            outcome = sandbox._evaluate(self.command, route, headers, body, keys)
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
            reply_body, reply_headers = _reply(outcome, plan, status, order_id, route)
            # Record before answering, so a client that got its answer can assert on received().
            finished = True
            sandbox._request_finished(record)
            self._write(status, reply_body, reply_headers)
        finally:
            if not finished:
                sandbox._request_finished(record)

    # ---------------------------------------------------------------- control endpoints

    def _control(self, route: str, body: bytes) -> None:
        status, payload = answer_control(self._srv.sandbox, self.command, route, body)
        self._write(status, dumps(payload), {})
