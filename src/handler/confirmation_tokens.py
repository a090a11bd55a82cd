"""The confirmation webhook's token (CONTRACT §10): read from Secrets Manager, checked in constant time.

The secret's SecretString is the token itself. During a rotation both the AWSCURRENT and the
AWSPREVIOUS version are accepted, so Refersion keeps being admitted while its webhook URL is updated.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

STAGES = ("AWSCURRENT", "AWSPREVIOUS")
# A token refused while the cached tokens are at least this old makes one fresh read: a rotation takes
# effect within seconds, while a stream of wrong tokens costs at most one read per this many seconds.
REFRESH_ON_MISMATCH_SECONDS = 30.0


class TokenUnavailable(Exception):
    """The token secret cannot be read; the message names the problem, never a value."""


class TokenSource(Protocol):
    def tokens(self, *, refresh_older_than: float | None = None) -> Sequence[str]: ...


def token_from_path(raw_path: str) -> str | None:
    """The last non-empty segment of the URL path ("/abc/" -> "abc"), None when there is none."""
    segments = [segment for segment in raw_path.split("/") if segment]
    return segments[-1] if segments else None


def token_matches(given: str | None, accepted: Sequence[str]) -> bool:
    """Constant-time comparison against every accepted token (each one always compared)."""
    if not given:
        return False
    given_bytes = given.encode("utf-8", "surrogatepass")
    matched = False
    for token in accepted:
        # compare_digest on bytes: on str it refuses non-ASCII text with a TypeError.
        matched |= hmac.compare_digest(given_bytes, token.encode("utf-8", "surrogatepass"))
    return matched


class SecretsManagerTokens:
    """The current and previous token, cached `max_age_seconds`.

    Hand-written rather than Powertools' SecretsProvider: its cache key ignores VersionStage (the two
    stages would share one entry) and it does not remember that a stage is absent (AWSPREVIOUS is
    missing until the first rotation), which would cost a GetSecretValue per request.
    """

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        max_age_seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[str, ...] = ()
        self._read_at: float | None = None

    def tokens(self, *, refresh_older_than: float | None = None) -> Sequence[str]:
        """The accepted tokens. `refresh_older_than`: re-read if the cached ones are at least that old."""
        with self._lock:
            now = self._monotonic()
            age = None if self._read_at is None else now - self._read_at
            limit = self._max_age if refresh_older_than is None else min(self._max_age, refresh_older_than)
            if age is None or age >= limit:
                self._cached = self._read()
                self._read_at = now
            return self._cached

    def clear(self) -> None:
        with self._lock:
            self._cached, self._read_at = (), None

    def _read(self) -> tuple[str, ...]:
        found: list[str] = []
        for stage in STAGES:
            value = self._read_stage(stage)
            if value:
                found.append(value)
        if not found:
            raise TokenUnavailable(f"secret {self._secret_id}: AWSCURRENT holds no token")
        return tuple(found)

    def _read_stage(self, stage: str) -> str | None:
        try:
            answer = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            if stage != "AWSCURRENT" and code == "ResourceNotFoundException":
                return None  # no rotation yet: there is no previous version
            raise TokenUnavailable(f"secret {self._secret_id} ({stage}): cannot be read ({code})") from None
        except BotoCoreError as exc:
            raise TokenUnavailable(
                f"secret {self._secret_id} ({stage}): cannot be read ({type(exc).__name__})"
            ) from None
        value = answer.get("SecretString")
        return value.strip() if isinstance(value, str) else None
