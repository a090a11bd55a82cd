"""A local stand-in for the receiver's Lambda Function URL (CONTRACT §10), for local runs and tests.

Each HTTP request to 127.0.0.1 becomes a payload-format-2.0 event passed to
``handler.confirmations.lambda_handler``, and its answer becomes the HTTP response, as a Function URL
would do. The receiver reads its settings from the environment (CONFIRMATION_TOKEN_SECRET_ID,
IDEMPOTENCY_TABLE_NAME, AWS_ENDPOINT_URL for moto)::

    with ConfirmationsUrl() as front:
        sandbox.webhooks.configure(front.url + token)
"""

from __future__ import annotations

import base64
import http.server
import threading
import uuid
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from local.lambda_shapes import FakeLambdaContext

_MAX_BODY = 6 * 1024 * 1024  # a Function URL's request limit
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")


def url_event(method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The event a Function URL hands to Lambda (payload format 2.0); text bodies as text, others base64."""
    parts = urlsplit(target)
    content_type = headers.get("content-type", "")
    is_text = any(content_type.startswith(kind) for kind in _TEXT_TYPES)
    try:
        text = body.decode("utf-8") if is_text else None
    except UnicodeDecodeError:
        text = None
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "domainName": headers.get("host", "127.0.0.1"),
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the path carries the token: never print request lines

    def _invoke(self) -> None:
        from handler.confirmations import lambda_handler

        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._answer(413, {}, b"")
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = lambda_handler(url_event(self.command, self.path, headers, body), FakeLambdaContext())
        raw = answer.get("body") or ""
        data = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
        self._answer(int(answer.get("statusCode", 200)), answer.get("headers") or {}, data)

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_POST(self) -> None:
        self._invoke()

    def do_GET(self) -> None:
        self._invoke()

    def do_PUT(self) -> None:
        self._invoke()

    def do_DELETE(self) -> None:
        self._invoke()


class ConfirmationsUrl:
    """The receiver behind a loopback HTTP server; ``url`` ends in "/" (append the token)."""

    def __init__(self, port: int = 0) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="confirmations-url", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
