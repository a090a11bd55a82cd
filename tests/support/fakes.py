"""In-memory stand-ins for the relay's ports, for unit tests of the edge that open no socket.

Each fake keeps the semantics of the real part that matter to the relay (the ledger remembers an order
only after a 2xx, the key source refreshes to the rotated pair, ...) and records what it was asked, so a
test can assert what a user would notice: what was posted, set aside, paced or remembered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from handler.credentials import CredentialsError, KeyPair
from handler.delivery import Delivery
from handler.outcomes import HttpVerdict, Outcome, RecordResult, classify_status
from handler.quarantine import QuarantineError
from handler.refersion_client import HttpAnswer
from handler.triggers import InboundRecord

KEYS = KeyPair("pub_fake", "sec_fake")
ROTATED_KEYS = KeyPair("pub_fake_2", "sec_fake_2")


def answer(status: int, detail: str = "", retry_after_seconds: float | None = None) -> HttpAnswer:
    """Refersion's answer with this HTTP status."""
    return HttpAnswer(
        classify_status(status), status, 12.5, detail=detail, retry_after_seconds=retry_after_seconds
    )


def no_answer(detail: str = "no answer within 1 s", *, maybe_received: bool = True) -> HttpAnswer:
    """A post that got no HTTP answer (timeout, dropped connection)."""
    return HttpAnswer(HttpVerdict.RETRY, None, 1000.0, detail=detail, maybe_received=maybe_received)


class FakeKeyPairs:
    """A KeyPairSource: the pair "in Secrets Manager" and the cached one, which a refresh brings in step."""

    def __init__(self, keys: KeyPair = KEYS) -> None:
        self.stored = keys
        self.cached = keys
        self.failure: str | None = None
        self.refresh_failure: str | None = None
        self.refreshes = 0

    def fail(
        self,
        problem: str = "secret refersion/keys: cannot be read (AccessDeniedException)",
        *,
        on_refresh_only: bool = False,
    ) -> None:
        """Secrets Manager cannot be read: at all, or only once the pair is cached."""
        if on_refresh_only:
            self.refresh_failure = problem
        else:
            self.failure = problem

    def rotate(self, keys: KeyPair = ROTATED_KEYS) -> None:
        """The pair changes in Secrets Manager; the cached one stays until a refresh."""
        self.stored = keys

    def current(self) -> KeyPair:
        if self.failure:
            raise CredentialsError(self.failure)
        return self.cached

    def refresh(self, stale: KeyPair) -> KeyPair:
        if self.failure or self.refresh_failure:
            raise CredentialsError(self.failure or self.refresh_failure or "")
        self.refreshes += 1
        self.cached = self.stored
        return self.cached


class ScriptedPoster:
    """A Poster answering from a script, in order (the last answer repeats); records every post."""

    def __init__(self, *script: HttpAnswer | Exception) -> None:
        self._script: list[HttpAnswer | Exception] = []
        self.answer_with(*script)
        self.posts: list[tuple[bytes, KeyPair]] = []

    def answer_with(self, *script: HttpAnswer | Exception) -> None:
        """The next posts get these answers (an exception is raised instead), the last one repeating."""
        self._script = list(script) or [answer(200)]

    @property
    def bodies(self) -> list[bytes]:
        return [body for body, _ in self.posts]

    def post(self, body: bytes, keys: KeyPair) -> HttpAnswer:
        self.posts.append((body, keys))
        step = self._script.pop(0) if len(self._script) > 1 else self._script[0]
        if isinstance(step, Exception):
            raise step
        return step


class RecordingQuarantine:
    """A Quarantine that keeps what it is sent, or fails like an unreachable dead-letter queue."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, RecordResult]] = []
        self.failing = False

    def send(self, body: str, result: RecordResult) -> None:
        if self.failing:
            raise QuarantineError("dead-letter queue send failed (EndpointConnectionError)")
        self.sent.append((body, result))


@dataclass
class InMemoryLedger:
    """An OrderLedger: an order is remembered only once a delivery came to 2xx, with its body's digest."""

    delivered: dict[str, str] = field(default_factory=dict)  # order_id -> sha256 of the body
    in_progress: set[str] = field(default_factory=set)
    contexts: list[Any] = field(default_factory=list)

    def register_context(self, context: Any) -> None:
        self.contexts.append(context)

    def deliver_once(self, order_id: str, body: bytes, deliver: Callable[[], Delivery]) -> Delivery:
        digest = hashlib.sha256(body).hexdigest()
        if order_id in self.in_progress:
            return Delivery(Outcome.RETRY, reason="another invocation is delivering this order right now")
        if order_id in self.delivered:
            reason = "order already delivered at ?"
            if self.delivered[order_id] != digest:
                reason += " with a different body (this copy's changes were not sent)"
            return Delivery(Outcome.DUPLICATE, reason=reason)
        self.in_progress.add(order_id)
        try:
            delivery = deliver()
        finally:
            self.in_progress.discard(order_id)
        if delivery.outcome is Outcome.DELIVERED:
            self.delivered[order_id] = digest
        return delivery


class RecordingPacer:
    """A RetryPacer that keeps every batch of retries it is asked to pace."""

    def __init__(self) -> None:
        self.paced: list[list[tuple[InboundRecord, RecordResult]]] = []

    def pace(self, retries: Sequence[tuple[InboundRecord, RecordResult]]) -> None:
        self.paced.append(list(retries))


class RecordingSqsClient:
    """The one SQS call the pacer makes, recorded; it can fail outright or report failed entries."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.failed_ids: set[str] = set()

    def change_message_visibility_batch(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        failed = [
            {"Id": entry["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid"}
            for entry in request["Entries"]
            if entry["Id"] in self.failed_ids
        ]
        successful = [
            {"Id": entry["Id"]} for entry in request["Entries"] if entry["Id"] not in self.failed_ids
        ]
        return {"Successful": successful, **({"Failed": failed} if failed else {})}


_SET_CLAUSE = re.compile(r"(#\w+) = (:\w+)")


class InMemoryDynamoDB:
    """The four item calls Powertools' DynamoDB persistence layer makes, on a dict, and nothing more.

    put_item evaluates the one condition Powertools writes (no item, or an expired one, or an expired
    in-progress one) directly rather than parsing the expression. Any call can be made to fail the way
    an unavailable table fails (a ClientError that is not a condition failure).
    """

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.failing: set[str] = set()

    def fail(self, *operations: str) -> None:
        self.failing.update(operations)

    def put_item(self, **request: Any) -> dict[str, Any]:
        self._maybe_fail("PutItem")
        names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
        item = request["Item"]
        key = item[names["#id"]]["S"]
        old = self.items.get(key)
        if old is not None and not _replaceable(old, names, values):
            error: Any = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "exists"}}
            if request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                error["Item"] = old
            raise ClientError(error, "PutItem")
        self.items[key] = dict(item)
        return {}

    def get_item(self, **request: Any) -> dict[str, Any]:
        self._maybe_fail("GetItem")
        item = self.items.get(_key_of(request["Key"]))
        return {"Item": item} if item is not None else {}

    def update_item(self, **request: Any) -> dict[str, Any]:
        self._maybe_fail("UpdateItem")
        names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
        item = self.items.setdefault(_key_of(request["Key"]), dict(request["Key"]))
        for name, value in _SET_CLAUSE.findall(request["UpdateExpression"]):
            item[names[name]] = values[value]
        return {}

    def delete_item(self, **request: Any) -> dict[str, Any]:
        self._maybe_fail("DeleteItem")
        self.items.pop(_key_of(request["Key"]), None)
        return {}

    def _maybe_fail(self, operation: str) -> None:
        if operation in self.failing:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                operation,
            )


def _key_of(key: dict[str, Any]) -> str:
    return str(next(iter(key.values()))["S"])


def _replaceable(old: dict[str, Any], names: dict[str, str], values: dict[str, Any]) -> bool:
    expired = int(old[names["#expiry"]]["N"]) < int(values[":now"]["N"])
    in_progress_expiry = old.get(names["#in_progress_expiry"])
    abandoned = (
        old[names["#status"]]["S"] == values[":inprogress"]["S"]
        and in_progress_expiry is not None
        and int(in_progress_expiry["N"]) < int(values[":now_in_millis"]["N"])
    )
    return expired or abandoned
