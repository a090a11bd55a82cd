"""The relay's configuration: one pydantic model, read from the environment once per cold start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from handler.budget import (
    FORMULA,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    minimum_function_timeout_seconds,
    record_budget_seconds,
)

DEFAULT_ENDPOINT = "https://inbound-webhooks.refersion.com/tracker/orders/paid"
DEFAULT_API_URL = "https://api.refersion.com/v2"
# SQS keeps a message at most 14 days: an order delivered once must stay remembered that long (CONTRACT §6).
IDEMPOTENCY_WINDOW_SECONDS = 14 * 24 * 60 * 60
# ChangeMessageVisibility accepts at most 12 hours.
MAX_VISIBILITY_SECONDS = 12 * 60 * 60


class ConfigurationError(Exception):
    """The function's environment is wrong; nothing can be delivered until it is fixed."""


def is_loopback_host(host: str) -> bool:
    """True for hosts that never leave the machine: plain http is tolerated only for these."""
    host = host.removeprefix("[").removesuffix("]")  # urllib3 keeps an IPv6 host in brackets
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HTTPS_RULE = "must be an https:// URL (plain http:// is accepted only for 127.0.0.1, ::1 or localhost)"


def checked_endpoint_url(value: str) -> str:
    """The URL unchanged if the HTTP client will contact exactly the host checked here, else ValueError.

    Parsed with urllib3's own parser (CONTRACT §5): urllib.parse reads some URLs differently (a backslash
    before '@' hides a remote host behind a loopback 'userinfo'), and the host checked must be the host
    that receives the key pair. Anything the two parsers might read differently is refused outright.
    """
    url = _as_the_client_reads_it(value)
    if url.auth is not None:
        raise ValueError(f"{_HTTPS_RULE}, without user:password@ (the key pair goes in headers)")
    if not url.host:
        raise ValueError(f"{_HTTPS_RULE}; the host is missing")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError(f"{_HTTPS_RULE}; the port must be 1-65535")
    if _standard_library_host(value) != url.host.removeprefix("[").removesuffix("]"):
        raise ValueError(f"{_HTTPS_RULE}; this one names its host ambiguously")
    if url.scheme == "https" or (url.scheme == "http" and is_loopback_host(url.host)):
        return value
    raise ValueError(_HTTPS_RULE)


def _as_the_client_reads_it(value: str) -> Url:
    if not value.isascii() or any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError(f"{_HTTPS_RULE}; ASCII only, without spaces (an international host in xn-- form)")
    if "\\" in value:
        raise ValueError(f"{_HTTPS_RULE}; backslashes are not allowed")
    try:
        return parse_url(value)
    except LocationParseError:
        raise ValueError(f"{_HTTPS_RULE}; this one cannot be parsed (bad host or port?)") from None


def _standard_library_host(value: str) -> str | None:
    try:
        return urlsplit(value).hostname
    except ValueError:
        return None


class Settings(BaseModel):
    """Every environment variable the function reads; the README's configuration table mirrors this."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    secret_id: str = Field(alias="REFERSION_SECRET_ID", min_length=1)
    endpoint: str = Field(alias="REFERSION_ENDPOINT", default=DEFAULT_ENDPOINT)
    # Upper bound: the record budget must fit Lambda's 900 s maximum timeout (_budget_fits_lambda).
    timeout_seconds: float = Field(alias="REFERSION_TIMEOUT_SECONDS", default=10.0, gt=0)
    max_concurrency: int = Field(alias="REFERSION_MAX_CONCURRENCY", default=10, ge=1, le=100)
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    source_queue_url: str | None = Field(alias="SOURCE_QUEUE_URL", default=None)
    idempotency_table_name: str | None = Field(alias="IDEMPOTENCY_TABLE_NAME", default=None)
    consent_category: str = Field(alias="CONSENT_CATEGORY", default="marketing", min_length=1)
    secret_cache_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0)
    retry_base_delay_seconds: int = Field(alias="RETRY_BASE_DELAY_SECONDS", default=30, ge=0)
    retry_max_delay_seconds: int = Field(
        alias="RETRY_MAX_DELAY_SECONDS", default=3600, ge=0, le=MAX_VISIBILITY_SECONDS
    )
    # The order state (CONTRACT §11) is kept whatever the switches below say; at least the 14 days an
    # SQS message can live, so that no copy of an order outlives the memory of it.
    order_record_days: int = Field(alias="ORDER_RECORD_DAYS", default=400, ge=14, le=3650)
    # Refunds and cancellations (CONTRACT §9).
    refunds_enabled: bool = Field(alias="REFUNDS_ENABLED", default=False)
    api_url: str = Field(alias="REFERSION_API_URL", default=DEFAULT_API_URL)
    refund_wait_minutes: int = Field(alias="REFUND_WAIT_MINUTES", default=60, ge=0, le=7 * 24 * 60)
    # Conversion confirmations (CONTRACT §10).
    confirmations_enabled: bool = Field(alias="CONFIRMATIONS_ENABLED", default=False)
    confirmation_wait_seconds: int = Field(alias="CONFIRMATION_WAIT_SECONDS", default=600, ge=0, le=43200)

    @field_validator("source_queue_url", "idempotency_table_name", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        # CloudFormation cannot omit a variable conditionally, so an empty string stands for "not set".
        return None if value == "" else value

    @field_validator("endpoint", "api_url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        return checked_endpoint_url(value)

    @field_validator("timeout_seconds")
    @classmethod
    def _budget_fits_lambda(cls, value: float) -> float:
        needed = minimum_function_timeout_seconds(value)
        if needed > LAMBDA_MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"one record may take {FORMULA} (handler.budget), so the function timeout would"
                f" have to be {needed} s, over Lambda's {LAMBDA_MAX_TIMEOUT_SECONDS} s maximum"
            )
        return value

    @model_validator(mode="after")
    def _refunds_need_the_order_state(self) -> Settings:
        if self.refunds_enabled and not self.idempotency_table_name:
            raise ValueError(
                "REFUNDS_ENABLED=true needs IDEMPOTENCY_TABLE_NAME: refunds are planned from the order state"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check the environment, naming each wrong variable in one error."""
        env = os.environ if environ is None else environ
        try:
            return cls.model_validate(dict(env))
        except ValidationError as exc:
            problems = [f"{_variable_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
            raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None

    @property
    def record_budget_seconds(self) -> float:
        """The longest one record can take: two posts and the AWS calls around them (handler.budget)."""
        return record_budget_seconds(self.timeout_seconds)


def _variable_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    return info.alias if info is not None and info.alias else field
