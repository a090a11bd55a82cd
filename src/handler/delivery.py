"""Posting one order body: the key pair, the 401/403 refresh-once rule and the outcome it comes to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from handler.credentials import CredentialsError, KeyPair, KeyPairSource
from handler.observability import logger
from handler.outcomes import HttpVerdict, Outcome
from handler.refersion_client import HttpAnswer
from mapping.privacy import scrub_excerpt

_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Delivery:
    """What trying to deliver one order came to: delivered, retry, rejected or duplicate."""

    outcome: Outcome
    reason: str = ""
    answer: HttpAnswer | None = None
    attempts: int = 0


class Poster(Protocol):
    def post(self, body: bytes, keys: KeyPair) -> HttpAnswer: ...


class Deliverer:
    def __init__(self, keys: KeyPairSource, poster: Poster) -> None:
        self._keys = keys
        self._poster = poster

    def deliver(self, body: bytes) -> Delivery:
        try:
            keys = self._keys.current()
        except CredentialsError as exc:
            logger.error("Refersion key pair unavailable", extra={"problem": str(exc)})
            return Delivery(Outcome.RETRY, reason=str(exc))
        answer = self._poster.post(body, keys)
        attempts = 1
        if answer.verdict is HttpVerdict.KEYS_REFUSED:
            answer, attempts = self._retry_with_fresh_keys(body, keys, answer)
        return _delivery_from(answer, attempts)

    def _retry_with_fresh_keys(
        self, body: bytes, stale: KeyPair, refused: HttpAnswer
    ) -> tuple[HttpAnswer, int]:
        # Keys rotated in Secrets Manager take effect without a redeploy (SPEC §4).
        try:
            fresh = self._keys.refresh(stale)
        except CredentialsError as exc:
            logger.error("Refersion key pair unavailable", extra={"problem": str(exc)})
            return refused, 1
        return self._poster.post(body, fresh), 2


def _delivery_from(answer: HttpAnswer, attempts: int) -> Delivery:
    if answer.verdict is HttpVerdict.DELIVERED:
        return Delivery(Outcome.DELIVERED, answer=answer, attempts=attempts)
    if answer.verdict is HttpVerdict.KEYS_REFUSED:
        logger.error(
            "Refersion rejected the key pair, also after reading it again from Secrets Manager",
            extra={"http_status": answer.status},
        )
        return Delivery(
            Outcome.RETRY,
            reason=f"keys rejected: Refersion answered {answer.status}",
            answer=answer,
            attempts=attempts,
        )
    if answer.verdict is HttpVerdict.REJECTED:
        # Masked before it is cut, and never cut into a piece of an address (SPEC §7).
        excerpt = scrub_excerpt(answer.detail, _EXCERPT_CHARS, cut=answer.detail_cut)
        reason = f"Refersion answered {answer.status}: {excerpt}".rstrip(": ")
        return Delivery(Outcome.REJECTED, reason=reason, answer=answer, attempts=attempts)
    if answer.status is not None:
        return Delivery(
            Outcome.RETRY, reason=f"Refersion answered {answer.status}", answer=answer, attempts=attempts
        )
    return Delivery(Outcome.RETRY, reason=answer.detail, answer=answer, attempts=attempts)
