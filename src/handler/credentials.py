"""The Refersion key pair, read from Secrets Manager and cached across invocations (CONTRACT §4)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import TransformParameterError

from handler.observability import SECRETS_MANAGER, count_dependency_failure

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Printable ASCII without spaces: anything else could not travel in an HTTP header (and CR/LF could
# forge extra headers), so such a key is a configuration problem, never something to send.
_HEADER_SAFE = re.compile(r"[!-~]+")


class CredentialsError(Exception):
    """The key pair cannot be had; the message names the problem, never a value."""


@dataclass(frozen=True)
class KeyPair:
    public_key: str
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:
        return "KeyPair(public_key=<hidden>, secret_key=<hidden>)"

    __str__ = __repr__


class KeyPairSource(Protocol):
    def current(self) -> KeyPair: ...

    def refresh(self, stale: KeyPair) -> KeyPair: ...


def key_pair_from_secret(value: Any, secret_id: str) -> KeyPair:
    """Check the secret's JSON shape: {"public_key": "...", "secret_key": "..."}."""
    if not isinstance(value, dict):
        raise CredentialsError(f"secret {secret_id}: SecretString must be a JSON object")
    problems = [_key_problem(value, name) for name in ("public_key", "secret_key")]
    found = [problem for problem in problems if problem]
    if found:
        raise CredentialsError(f"secret {secret_id}: " + "; ".join(found))
    return KeyPair(public_key=value["public_key"], secret_key=value["secret_key"])


def _key_problem(secret: dict[str, Any], name: str) -> str | None:
    value = secret.get(name)
    if value is None:
        return f"{name} is missing"
    if not isinstance(value, str) or not value:
        return f"{name} must be a non-empty string"
    if not _HEADER_SAFE.fullmatch(value):
        return f"{name} contains characters not allowed in an HTTP header (spaces, CR/LF or non-ASCII)"
    return None


class SecretsManagerKeyPairs:
    """Powertools' SecretsProvider does the caching; this adds the shape check and a refresh that
    happens once however many concurrent records were refused with the same stale pair."""

    def __init__(self, client: SecretsManagerClient, secret_id: str, max_age_seconds: int) -> None:
        self._provider = SecretsProvider(boto3_client=client)
        self._secret_id = secret_id
        self._max_age = max_age_seconds
        self._lock = threading.Lock()

    def current(self) -> KeyPair:
        with self._lock:
            return self._fetch(force=False)

    def refresh(self, stale: KeyPair) -> KeyPair:
        with self._lock:
            cached = self._fetch(force=False)
            if cached != stale:
                return cached  # another worker already refreshed it
            return self._fetch(force=True)

    def _fetch(self, *, force: bool) -> KeyPair:
        try:
            value = self._provider.get(
                self._secret_id, transform="json", max_age=self._max_age, force_fetch=force
            )
        except Exception as exc:
            if not isinstance(exc, TransformParameterError):  # the call failed, not the secret's shape
                count_dependency_failure(SECRETS_MANAGER, "GetSecretValue")
            raise CredentialsError(f"secret {self._secret_id}: cannot be read ({_describe(exc)})") from None
        try:
            return key_pair_from_secret(value, self._secret_id)
        except CredentialsError:
            # Do not keep a malformed value for SECRET_CACHE_SECONDS: the fix takes effect at once.
            self._provider.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
            raise

    def clear(self) -> None:
        """Forget the cached pair (SnapStart restore, tests)."""
        with self._lock:
            self._provider.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


def _describe(exc: Exception) -> str:
    if isinstance(exc, TransformParameterError):
        return "SecretString is not JSON"  # the decoder's own message could quote the secret's start
    # The SDK's message names the error code and the secret id, never its value.
    return str(exc)[:300]
