"""The urllib3 client that posts an order to Refersion (CONTRACT §5)."""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import math
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, SSLError, TimeoutError

from handler.credentials import KeyPair
from handler.outcomes import HttpVerdict, classify_status

USER_AGENT = "refersion-relay/0.1 (+urllib3)"
_EXCERPT_BYTES = 512
_DRAIN_CHUNK = 64 * 1024
# NAT gateways forget idle flows after 350 s without telling either end; a pooled connection idle for
# longer would swallow the next request. Drop the pool's connections before that can happen.
IDLE_RESET_SECONDS = 300.0
# SQS cannot hide a message longer than 12 h: a longer Retry-After means nothing more (CONTRACT §5).
MAX_RETRY_AFTER_SECONDS = 12 * 60 * 60
_ASCII_SECONDS = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class HttpAnswer:
    """What one POST came to."""

    verdict: HttpVerdict
    status: int | None
    latency_ms: float
    detail: str = ""
    retry_after_seconds: float | None = None
    # True when the post is unanswered (CONTRACT §10): bytes of the request may have left and no status
    # line came back, so Refersion may have credited it. False for any answer, and for a failure while
    # connecting or in the TLS handshake (nothing left).
    maybe_received: bool = False
    # True when `detail` is only the start of the body (read limit, or the answer was cut off).
    detail_cut: bool = False

    @property
    def unanswered(self) -> bool:
        """The request may have reached Refersion and no status line was read."""
        return self.status is None and self.maybe_received

    @property
    def nothing_sent(self) -> bool:
        """No byte of the request left: connect or TLS failure, or a failure before writing."""
        return self.status is None and not self.maybe_received


class _Exchange:
    """One request's deadline and what is known of its answer so far.

    Why a watchdog: urllib3's read timeout applies to each recv, so a server trickling a byte at a time
    could hold a post for ever. At the deadline the watchdog shuts the socket down, which makes the
    blocked read (status line, headers or body) return at once; the status line, if it arrived before,
    still decides the outcome (CONTRACT §5). One short-lived timer thread per post: negligible next to a
    network round trip, and simpler than a shared scheduler.
    """

    def __init__(self, timeout_seconds: float) -> None:
        self.status: int | None = None
        # Set just before the first byte of the request is written to a connected socket.
        self.sending = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._expired = False
        self._finished = False
        self._timer = threading.Timer(timeout_seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def attach(self, sock: socket.socket | None) -> None:
        """The socket the request is using now (a reused one, a new one, then its TLS wrapper)."""
        with self._lock:
            self._sock = sock
            if self._expired and not self._finished:
                _shut_down(sock)

    def finish(self) -> bool:
        """Stop the watchdog; True when the deadline passed (the connection's answer was cut)."""
        self._timer.cancel()
        with self._lock:
            self._finished = True
            return self._expired

    def _expire(self) -> None:
        # Under the lock: finish() waits for it, so the socket is never shut once back in the pool.
        with self._lock:
            if self._finished:
                return
            self._expired = True
            _shut_down(self._sock)


def _shut_down(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # The plain socket's shutdown: an SSLSocket's own would unwrap it under the reading thread. OSError:
    # already closed, or detached by its TLS wrapper (which is attached next).
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current = threading.local()


def _current_exchange() -> _Exchange | None:
    exchange: _Exchange | None = getattr(_current, "exchange", None)
    return exchange


class _StatusNotingResponse(http.client.HTTPResponse):
    """Remembers the final status code as soon as the status line is read, before the headers: if they
    then fail (cut, too many, too long), the status that arrived still decides (CONTRACT §5).

    The pool is a plain PoolManager (no proxy tunnel), so the only status line read is Refersion's.
    """

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]  # private in typeshed
        exchange = _current_exchange()
        if exchange is not None and status != http.client.CONTINUE:
            exchange.status = status
        return version, status, reason


class _WatchedHTTPConnection(HTTPConnection):
    """Tells the request's watchdog which socket to shut down, and notes the status line."""

    response_class = _StatusNotingResponse

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)  # before TLS: a stalled handshake is bounded too
        return sock

    def connect(self) -> None:
        super().connect()
        _attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)  # a kept-alive connection: no connect() this time
        super().request(*args, **kwargs)

    def send(self, data: Any) -> None:
        _connect_then_note_sending(self)
        super().send(data)


class _WatchedHTTPSConnection(HTTPSConnection):
    response_class = _StatusNotingResponse

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        _attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)
        super().request(*args, **kwargs)

    def send(self, data: Any) -> None:
        _connect_then_note_sending(self)
        super().send(data)


def _connect_then_note_sending(connection: HTTPConnection) -> None:
    """Every byte of a request goes through send(): once connected (and past TLS), bytes may leave.

    http.client connects lazily inside send(); connecting first here keeps a connect or handshake
    failure on the "nothing sent" side (CONTRACT §10: a connect failure is not unanswered).
    """
    if connection.sock is None:
        connection.connect()
    exchange = _current_exchange()
    if exchange is not None:
        exchange.sending = True


def _attach(sock: socket.socket | None) -> None:
    exchange = _current_exchange()
    if exchange is not None:
        exchange.attach(sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class RefersionClient:
    """One pool of kept-alive connections, shared by the batch's workers and by warm invocations."""

    def __init__(
        self,
        endpoint: str,
        timeout_seconds: float,
        max_connections: int,
        idle_reset_seconds: float = IDLE_RESET_SECONDS,
    ) -> None:
        self._endpoint = endpoint
        self._idle_reset_seconds = idle_reset_seconds
        self._timeout = urllib3.Timeout(total=timeout_seconds)
        self._timeout_seconds = timeout_seconds
        # block=True: never more connections than workers; retries=False: a retry is SQS's job, so
        # that it is paced and counted, and so that a maybe-delivered post is never silently repeated.
        self._pool = urllib3.PoolManager(num_pools=1, maxsize=max_connections, block=True, retries=False)
        self._pool.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        self._last_used = time.monotonic()
        self._lock = threading.Lock()

    def post(self, body: bytes, keys: KeyPair) -> HttpAnswer:
        """POST the order; the whole request, however slow the far side, ends within the timeout."""
        self._forget_idle_connections()
        headers = {
            "Content-Type": "application/json",
            "Refersion-Public-Key": keys.public_key,
            "Refersion-Secret-Key": keys.secret_key,
            "User-Agent": USER_AGENT,
        }
        started = time.perf_counter()
        exchange = _Exchange(self._timeout_seconds)
        _current.exchange = exchange
        exchange.start()
        try:
            return self._exchange(body, headers, exchange, started)
        finally:
            exchange.finish()
            _current.exchange = None

    def _exchange(
        self, body: bytes, headers: dict[str, str], exchange: _Exchange, started: float
    ) -> HttpAnswer:
        try:
            response = self._pool.request(
                "POST",
                self._endpoint,
                body=body,
                headers=headers,
                timeout=self._timeout,
                preload_content=False,
                redirect=False,
            )
        except Exception as exc:  # whatever the far side's bytes make the HTTP stack raise
            if exchange.status is not None:  # the status line arrived, then the headers failed
                return _answer(exchange.status, started, detail_cut=True)
            return self._transport_failure(exc, started, sent=exchange.sending)
        excerpt, clean = bytearray(), False
        try:
            _read_excerpt(response, excerpt)
            _drain(response)
            clean = True
        except Exception:  # the body was cut, garbled or too slow: the status line still decides
            clean = False
        finally:
            if exchange.finish() or not clean:
                response.close()  # a connection whose answer was cut never goes back to the pool
            response.release_conn()
        return _answer(
            response.status,
            started,
            detail=excerpt.decode("utf-8", "replace"),
            detail_cut=len(excerpt) >= _EXCERPT_BYTES or not clean,
            retry_after=response.headers.get("Retry-After"),
        )

    def close(self) -> None:
        """Drop every pooled connection (SnapStart restore: sockets must not survive a snapshot)."""
        self._pool.clear()

    def _forget_idle_connections(self) -> None:
        now = time.monotonic()
        with self._lock:
            idle_for, self._last_used = now - self._last_used, now
        if idle_for > self._idle_reset_seconds:
            self._pool.clear()

    def _transport_failure(self, exc: BaseException, started: float, *, sent: bool) -> HttpAnswer:
        """No status line: unanswered if bytes may have left, else nothing was sent (CONTRACT §10)."""
        cause = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
        if isinstance(cause, SSLError) and not sent:
            # Nothing was sent: the handshake failed before any byte of the order left.
            detail = f"TLS verification failed, nothing sent ({_first_line(cause)})"
        elif not sent and isinstance(cause, TimeoutError) and not isinstance(cause, NewConnectionError):
            detail = f"could not connect within {self._timeout_seconds:g} s, nothing sent"
        elif not sent:
            detail = "could not connect, nothing sent"
        elif isinstance(cause, TimeoutError):
            detail = f"no answer within {self._timeout_seconds:g} s"
        elif isinstance(cause, ProtocolError):
            detail = "connection dropped before an answer"
        else:
            detail = f"transport error ({type(cause).__name__})"
        return HttpAnswer(
            verdict=HttpVerdict.RETRY,
            status=None,
            latency_ms=_elapsed_ms(started),
            detail=detail,
            maybe_received=sent,
        )


def _answer(
    status: int, started: float, *, detail: str = "", detail_cut: bool = False, retry_after: str | None = None
) -> HttpAnswer:
    return HttpAnswer(
        verdict=classify_status(status),
        status=status,
        latency_ms=_elapsed_ms(started),
        detail=detail.lstrip(),
        detail_cut=detail_cut,
        retry_after_seconds=parse_retry_after(retry_after),
    )


def _read_excerpt(response: urllib3.BaseHTTPResponse, excerpt: bytearray) -> None:
    """The body's first bytes into `excerpt`, kept as far as they got if the read then fails."""
    while len(excerpt) < _EXCERPT_BYTES:
        # read1: whatever has arrived, so bytes already read are kept when a later read fails
        chunk = response.read1(_EXCERPT_BYTES - len(excerpt))
        if not chunk:
            return
        excerpt += chunk


def _drain(response: urllib3.BaseHTTPResponse) -> None:
    """Read the rest of the body, so the kept-alive connection can serve the next post."""
    while response.read(_DRAIN_CHUNK):
        pass


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as ASCII integer seconds or an HTTP date, capped at 12 h; anything else is None.

    Read defensively (CONTRACT §5): it never raises and never returns more than MAX_RETRY_AFTER_SECONDS.
    """
    if not value:
        return None
    value = value.strip()
    if _ASCII_SECONDS.fullmatch(value):
        # Compare as text first: int() of thousands of digits is slow, and float() of hundreds is inf.
        if len(value.lstrip("0")) > len(str(MAX_RETRY_AFTER_SECONDS)):
            return float(MAX_RETRY_AFTER_SECONDS)
        return float(min(int(value), MAX_RETRY_AFTER_SECONDS))
    return _seconds_until_http_date(value)


def _seconds_until_http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    except Exception:  # the stdlib date parser has raised TypeError, ValueError, IndexError... by version
        return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), float(MAX_RETRY_AFTER_SECONDS))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
