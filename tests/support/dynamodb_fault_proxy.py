"""A tiny HTTP proxy in front of the moto server that fails the next N DynamoDB calls.

Point a boto3 client's endpoint_url at `proxy.url`. `throttle_next(n)`: the next n calls get DynamoDB's
own 400 ThrottlingException answer and never reach moto. `lose_answers_next(n)`: the next n calls are
forwarded (moto applies them) and then answered with a 500 InternalServerError, as when an answer is
lost on the way back. Every other call is forwarded unchanged. Minimal on purpose (DynamoDB's JSON
protocol only); a full AWS fault proxy would live in local/.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

THROTTLING_BODY = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}'
)
INTERNAL_ERROR_BODY = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"lost"}'
ACCESS_DENIED_BODY = b'{"__type":"com.amazon.coral.service#AccessDeniedException","message":"denied"}'
_JSON = [("Content-Type", "application/x-amz-json-1.0")]
_NOT_FORWARDED = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass
class _Rule:
    """`fault` for the next `count` calls that `matches` (operation, request body) picks out."""

    fault: str
    count: int
    matches: Callable[[str, bytes], bool]


class DynamoDBFaultProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._faults: list[str] = []  # "throttle" or "lose", one per coming call
        self._rules: list[_Rule] = []
        self.operations: list[str] = []  # X-Amz-Target of every call received, in order
        self.failed: list[str] = []  # the operations that got a fault
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def throttle_next(self, count: int) -> None:
        with self._lock:
            self._faults = ["throttle"] * count

    def lose_answers_next(self, count: int) -> None:
        with self._lock:
            self._faults = ["lose"] * count

    def fail_matching(self, fault: str, count: int, matches: Callable[[str, bytes], bool]) -> None:
        """`fault` ("throttle", "lose" or "deny": a 400 AccessDeniedException, not retryable) for the
        next `count` calls that `matches(operation, body)` picks out (rules are tried in order)."""
        with self._lock:
            self._rules.append(_Rule(fault, count, matches))

    def __enter__(self) -> DynamoDBFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self, operation: str, body: bytes = b"") -> str | None:
        with self._lock:
            self.operations.append(operation)
            for rule in self._rules:
                if rule.count > 0 and rule.matches(operation, body):
                    rule.count -= 1
                    self.failed.append(operation)
                    return rule.fault
            if not self._faults:
                return None
            self.failed.append(operation)
            return self._faults.pop(0)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            connection.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                operation = self.headers.get("X-Amz-Target", "")
                fault = proxy._next_fault(operation, body)
                if fault == "throttle":
                    self._reply(400, _JSON, THROTTLING_BODY)
                    return
                if fault == "deny":
                    self._reply(400, _JSON, ACCESS_DENIED_BODY)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
                status, answer_headers, answer = proxy._forward("POST", self.path, headers, body)
                if fault == "lose":
                    self._reply(500, _JSON, INTERNAL_ERROR_BODY)
                    return
                kept = [(k, v) for k, v in answer_headers if k.lower() not in _NOT_FORWARDED]
                self._reply(status, kept, answer)

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return None

        return Handler
