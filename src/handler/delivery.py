"""Posting one order body: the key pair, the 401/403 refresh-once rule and the outcome it comes to."""

from __future__ import annotations

from collections.abc import Callable
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
    # Decided from the order state without a post: the status remembered (a 4xx), the wait left.
    http_status: int | None = None
    wait_seconds: float | None = None


class PostNotBegun(Exception):
    """Raised by a `before_post` hook that could not do its part: nothing is posted, the record comes back."""


class Poster(Protocol):
    def post(self, body: bytes, keys: KeyPair) -> HttpAnswer: ...


class Deliverer:
    def __init__(self, keys: KeyPairSource, poster: Poster) -> None:
        self._keys = keys
        self._poster = poster

    def deliver(self, body: bytes, before_post: Callable[[], None] | None = None) -> Delivery:
        """Post `body`; `before_post` runs right before each post (the order state's post-began mark)."""
        try:
            keys = self._keys.current()
        except CredentialsError as exc:
            logger.error("Refersion key pair unavailable", extra={"problem": str(exc)})
            return Delivery(Outcome.RETRY, reason=str(exc))
        post = _with_hook(self._poster.post, before_post)
        try:
            answer = post(body, keys)
            attempts = 1
            if answer.verdict is HttpVerdict.KEYS_REFUSED:
                answer, attempts = self._retry_with_fresh_keys(post, body, keys, answer)
        except PostNotBegun as exc:
            return Delivery(Outcome.RETRY, reason=str(exc))
        return _delivery_from(answer, attempts)

    def _retry_with_fresh_keys(
        self, post: Callable[[bytes, KeyPair], HttpAnswer], body: bytes, stale: KeyPair, refused: HttpAnswer
    ) -> tuple[HttpAnswer, int]:
        # Keys rotated in Secrets Manager take effect without a redeploy (CONTRACT §4).
        try:
            fresh = self._keys.refresh(stale)
        except CredentialsError as exc:
            logger.error("Refersion key pair unavailable", extra={"problem": str(exc)})
            return refused, 1
        return post(body, fresh), 2


def _with_hook(
    post: Callable[[bytes, KeyPair], HttpAnswer], before_post: Callable[[], None] | None
) -> Callable[[bytes, KeyPair], HttpAnswer]:
    if before_post is None:
        return post

    def hooked(body: bytes, keys: KeyPair) -> HttpAnswer:
        before_post()
        return post(body, keys)

    return hooked


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
        # Masked before it is cut, and never cut into a piece of an address (CONTRACT §7).
        excerpt = scrub_excerpt(answer.detail, _EXCERPT_CHARS, cut=answer.detail_cut)
        reason = f"Refersion answered {answer.status}: {excerpt}".rstrip(": ")
        return Delivery(Outcome.REJECTED, reason=reason, answer=answer, attempts=attempts)
    if answer.status is not None:
        return Delivery(
            Outcome.RETRY, reason=f"Refersion answered {answer.status}", answer=answer, attempts=attempts
        )
    return Delivery(Outcome.RETRY, reason=answer.detail, answer=answer, attempts=attempts)
