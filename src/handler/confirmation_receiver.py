"""The conversion webhook receiver (CONTRACT §10): a Lambda Function URL request in, one confirmation stored.

Checks, in this order: the method (POST, else 405); the token, the last non-empty segment of the path
(wrong or missing: 403, empty body, nothing stored); the body's size after base64 decoding (over
64 KB: 413); the body (not a JSON object, no order_id, no conversion id: 400); storage (failure: 500,
Refersion may send again). Otherwise 200, the conversion stored once per conversion id.

Each request gets one outcome log line and one count (`confirmation_<outcome>`). The token, the path
that carries it and the body never appear in either; neither does any customer data.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handler.confirmation_tokens import (
    REFRESH_ON_MISMATCH_SECONDS,
    TokenSource,
    TokenUnavailable,
    token_from_path,
    token_matches,
)
from handler.observability import logger, metrics
from handler.order_state import Confirmation, OrderStateError, OrderStates
from mapping.confirmation import ConversionWebhook, missing_required

MAX_BODY_BYTES = 64 * 1024
# A storage write is retried (throttling, 5xx) until this long after the request arrived; the
# function's timeout (template: 10 s) leaves room for the answer.
STORAGE_BUDGET_SECONDS = 5.0


class ReceiverSettings(BaseModel):
    """Every environment variable the receiver reads."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    token_secret_id: str = Field(alias="CONFIRMATION_TOKEN_SECRET_ID", min_length=1)
    table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME", min_length=1)
    # The same bounds as the relay's (handler.config): a confirmation lives as long as the order state.
    order_record_days: int = Field(alias="ORDER_RECORD_DAYS", default=400, ge=14, le=3650)
    token_cache_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReceiverSettings:
        return cls.model_validate(dict(os.environ if environ is None else environ))


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    BAD_REQUEST = "bad_request"
    STORAGE_FAILED = "storage_failed"
    TOKEN_UNAVAILABLE = "token_unavailable"  # noqa: S105 - an outcome name, not a password
    METHOD_NOT_ALLOWED = "method_not_allowed"


_STATUS = {
    Outcome.STORED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.FORBIDDEN: 403,
    Outcome.TOO_LARGE: 413,
    Outcome.BAD_REQUEST: 400,
    Outcome.STORAGE_FAILED: 500,
    Outcome.TOKEN_UNAVAILABLE: 500,
    Outcome.METHOD_NOT_ALLOWED: 405,
}


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str | None = None
    order_id: str | None = None
    conversion_id: str | None = None

    @property
    def status(self) -> int:
        return _STATUS[self.outcome]


class _Refused(Exception):
    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.result = Result(outcome, reason)


class ConfirmationReceiver:
    def __init__(
        self,
        tokens: TokenSource,
        store: OrderStates,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tokens
        self._store = store
        self._clock = clock
        self._monotonic = monotonic

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A payload-2.0 Function URL event in, its HTTP response out; reports the outcome."""
        result = self.decide(event)
        report(result)
        return response(result)

    def decide(self, event: Mapping[str, Any]) -> Result:
        started = self._monotonic()
        try:
            _check_method(event)
            self._check_token(event)
            webhook = _parse(_body_bytes(event))
        except _Refused as refused:
            return refused.result
        confirmation = Confirmation(
            conversion_id=webhook.id,
            order_id=webhook.order_id,
            status=webhook.status or "",
            affiliate_id=webhook.affiliate_id,
            received_at=self._clock(),
        )
        try:
            new = self._store.put_confirmation(confirmation, deadline=started + STORAGE_BUDGET_SECONDS)
        except OrderStateError as exc:
            return Result(Outcome.STORAGE_FAILED, str(exc), webhook.order_id, webhook.id)
        outcome = Outcome.STORED if new else Outcome.DUPLICATE
        return Result(outcome, None, webhook.order_id, webhook.id)

    def _check_token(self, event: Mapping[str, Any]) -> None:
        given = token_from_path(str(event.get("rawPath") or ""))
        if given is None:
            raise _Refused(Outcome.FORBIDDEN, "no token in the path")
        try:
            if token_matches(given, self._tokens.tokens()):
                return
            # Perhaps rotated since the cache was filled: one fresh read, at most every 30 s.
            if token_matches(given, self._tokens.tokens(refresh_older_than=REFRESH_ON_MISMATCH_SECONDS)):
                return
        except TokenUnavailable as exc:
            raise _Refused(Outcome.TOKEN_UNAVAILABLE, str(exc)) from None
        raise _Refused(Outcome.FORBIDDEN, "wrong token")


def _check_method(event: Mapping[str, Any]) -> None:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = str(http.get("method") or "").upper()
    if method != "POST":
        raise _Refused(Outcome.METHOD_NOT_ALLOWED, "only POST is accepted")


def _body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise _Refused(Outcome.BAD_REQUEST, "the body is not text")
    if not event.get("isBase64Encoded"):
        raw = body.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_BODY_BYTES:
            raise _Refused(Outcome.TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
        return raw
    # Base64 turns 3 bytes into 4 characters: anything longer than this decodes to more than the limit.
    if len(body) > (MAX_BODY_BYTES + 2) // 3 * 4 + 4:
        raise _Refused(Outcome.TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused(Outcome.BAD_REQUEST, "the body is not valid base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise _Refused(Outcome.TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
    return raw


def _parse(raw: bytes) -> ConversionWebhook:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Refused(Outcome.BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(document, dict):
        raise _Refused(Outcome.BAD_REQUEST, "the body is not a JSON object")
    missing = missing_required(document)
    if missing:
        raise _Refused(Outcome.BAD_REQUEST, missing)
    try:
        return ConversionWebhook.model_validate(document)
    except ValidationError as exc:
        # Name the fields only: pydantic's messages can quote the values.
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise _Refused(Outcome.BAD_REQUEST, "malformed " + ", ".join(fields)) from None


def response(result: Result) -> dict[str, Any]:
    """The Function URL response: an empty body for 403 (nothing to learn), a short JSON otherwise."""
    if result.outcome is Outcome.FORBIDDEN:
        return {"statusCode": 403, "body": ""}
    answer: dict[str, Any] = {"outcome": result.outcome.value}
    if result.reason and result.outcome in (Outcome.BAD_REQUEST, Outcome.TOO_LARGE):
        answer["reason"] = result.reason
    headers = {"content-type": "application/json"}
    if result.outcome is Outcome.METHOD_NOT_ALLOWED:
        headers["allow"] = "POST"
    return {"statusCode": result.status, "headers": headers, "body": json.dumps(answer)}


def report(result: Result) -> None:
    """One outcome line and one count per request (never the token, the path or the body)."""
    fields: dict[str, Any] = {"outcome": result.outcome.value, "http_status": result.status}
    for name in ("order_id", "conversion_id", "reason"):
        value = getattr(result, name)
        if value is not None:
            fields[name] = value
    level = "info" if result.status < 400 else ("error" if result.status >= 500 else "warning")
    getattr(logger, level)(f"confirmation {result.outcome.value}", extra=fields)
    metrics.add_metric(name=f"confirmation_{result.outcome.value}", unit=MetricUnit.Count, value=1)
