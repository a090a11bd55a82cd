"""The urllib3 client that posts an order to Refersion (SPEC §5)."""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    SSLError,
    TimeoutError,
)

from handler.credentials import KeyPair
from handler.outcomes import HttpVerdict, classify_status

USER_AGENT = "refersion-relay/0.1 (+urllib3)"
_EXCERPT_BYTES = 512
# NAT gateways forget idle flows after 350 s without telling either end; a pooled connection idle for
# longer would swallow the next request. Drop the pool's connections before that can happen.
IDLE_RESET_SECONDS = 300.0


@dataclass(frozen=True)
class HttpAnswer:
    """What one POST came to."""

    verdict: HttpVerdict
    status: int | None
    latency_ms: float
    detail: str = ""
    retry_after_seconds: float | None = None
    # True when the request may have reached Refersion although no answer came back.
    maybe_received: bool = False


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
        self._last_used = time.monotonic()
        self._lock = threading.Lock()

    def post(self, body: bytes, keys: KeyPair) -> HttpAnswer:
        self._forget_idle_connections()
        headers = {
            "Content-Type": "application/json",
            "Refersion-Public-Key": keys.public_key,
            "Refersion-Secret-Key": keys.secret_key,
            "User-Agent": USER_AGENT,
        }
        started = time.perf_counter()
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
        except (HTTPError, OSError) as exc:
            return self._transport_failure(exc, started)
        try:
            excerpt = response.read(_EXCERPT_BYTES)
            response.drain_conn()
        except (HTTPError, OSError) as exc:
            return self._transport_failure(exc, started)
        finally:
            response.release_conn()
        return HttpAnswer(
            verdict=classify_status(response.status),
            status=response.status,
            latency_ms=_elapsed_ms(started),
            detail=excerpt.decode("utf-8", "replace").strip(),
            retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
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

    def _transport_failure(self, exc: BaseException, started: float) -> HttpAnswer:
        cause = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
        if isinstance(cause, TimeoutError):
            detail, maybe = f"no answer within {self._timeout_seconds:g} s", True
        elif isinstance(cause, SSLError):
            # Nothing was sent: the handshake failed before any byte of the order left.
            detail, maybe = f"TLS verification failed, nothing sent ({_first_line(cause)})", False
        elif isinstance(cause, NewConnectionError):
            detail, maybe = "could not connect", False
        elif isinstance(cause, ProtocolError):
            detail, maybe = "connection dropped before an answer", True
        else:
            detail, maybe = f"transport error ({type(cause).__name__})", True
        return HttpAnswer(
            verdict=HttpVerdict.RETRY,
            status=None,
            latency_ms=_elapsed_ms(started),
            detail=detail,
            maybe_received=maybe,
        )


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
