"""The order-state store on the idempotency table (CONTRACT §11), with writes that cannot undo each other.

Each transition is one UpdateItem that SETs or ADDs only the attributes it is about, under a condition
where a race matters; a lost condition raises StateChanged with the state the store found (read from
the same failed call, `ReturnValuesOnConditionCheckFailure`). DynamoDB actions used: GetItem, PutItem,
UpdateItem (no Query, Scan, DeleteItem or BatchGetItem). The item schema is in order_state_items.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    ClientError,
)

from handler.aws_retry import call_with_retries
from handler.order_state import (
    DEFAULT_ORDER_RECORD_DAYS,
    Confirmation,
    ItemLine,
    OrderState,
    RejectedRecord,
    StateChanged,
    after_plan_call,
    confirmation_key,
    format_time,
    merge_lines,
    plan_to_store,
    state_key,
    storable_text,
)
from handler.order_state_items import (
    Item,
    answer_word,
    confirmation_from_item,
    confirmation_item,
    lines_value,
    names,
    number_value,
    plan_value,
    rejected_text,
    state_from_item,
    text_value,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from mapping.refunds import CancelPlan


class _ConditionFailed(Exception):
    def __init__(self, old: Item | None) -> None:
        super().__init__("condition failed")
        self.old = old


class DynamoDBOrderStates:
    """OrderStates on the idempotency table (partition key `id`, TTL attribute `expiration`)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        record_days: int = DEFAULT_ORDER_RECORD_DAYS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._record_seconds = record_days * 24 * 60 * 60
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep

    # Reading

    def get(self, order_id: str, *, deadline: float | None = None) -> OrderState | None:
        item = self._get_item(state_key(order_id), deadline)
        return None if item is None else state_from_item(order_id, item)

    def confirmations_for(self, order_id: str, *, deadline: float | None = None) -> tuple[Confirmation, ...]:
        state = self.get(order_id, deadline=deadline)
        found: list[Confirmation] = []
        # One GetItem per conversion id (usually one or two): keeps the IAM policy to the four actions
        # Powertools already needs; an expired confirmation is simply absent.
        for conversion_id in sorted(state.confirmations if state else ()):
            item = self._get_item(confirmation_key(conversion_id), deadline)
            if item is not None:
                found.append(confirmation_from_item(item))
        return tuple(sorted(found, key=lambda c: (c.received_at, c.conversion_id)))

    # The post of an order

    def mark_seen(self, order_id: str, *, deadline: float | None = None) -> OrderState:
        now = format_time(self._clock())
        return self._update(
            order_id, "#seen_at = if_not_exists(#seen_at, :now)", {":now": text_value(now)}, deadline
        )

    def mark_post_began(self, order_id: str, at: datetime, *, deadline: float | None = None) -> OrderState:
        try:
            return self._update(
                order_id,
                "#post_began_at = :at",
                {":at": text_value(format_time(at))},
                deadline,
                condition="attribute_not_exists(#delivered_at)",
            )
        except _ConditionFailed as failed:
            raise StateChanged(
                order_id, "the order is already delivered", _decoded(order_id, failed)
            ) from None

    def mark_answered(
        self, order_id: str, answered: bool, at: datetime, *, deadline: float | None = None
    ) -> OrderState:
        try:
            return self._update(
                order_id,
                "#last_post = :last_post, #last_post_at = :at",
                {":last_post": text_value(answer_word(answered)), ":at": text_value(format_time(at))},
                deadline,
                condition="attribute_not_exists(#last_post_at) OR #last_post_at <= :at",
            )
        except _ConditionFailed as failed:
            raise StateChanged(order_id, "a later post was recorded", _decoded(order_id, failed)) from None

    def mark_delivered(
        self,
        order_id: str,
        body_digest: str,
        items: Sequence[ItemLine],
        currency: str,
        at: datetime,
        *,
        deadline: float | None = None,
    ) -> OrderState:
        when = format_time(at)
        values = {
            ":at": text_value(when),
            ":day": text_value(when[:10]),
            ":digest": text_value(body_digest),
            ":currency": text_value(currency),
            ":items": lines_value(items),
            ":answered": text_value(answer_word(True)),
        }
        expression = (
            "#delivered_at = :at, #delivered_day = :day, #body_digest = :digest, #currency = :currency, "
            "#delivered_items = :items, #last_post = :answered, #last_post_at = :at"
        )
        try:
            return self._update(
                order_id, expression, values, deadline, condition="attribute_not_exists(#delivered_at)"
            )
        except _ConditionFailed as failed:
            current = _decoded(order_id, failed)
            if current and current.delivered and current.delivered.body_digest == body_digest:
                return current  # the same delivery recorded already (or a retry of this very write)
            raise StateChanged(order_id, "delivered already with another body", current) from None

    # Order side (issues 11-13)

    def mark_post_not_sent(
        self, order_id: str, began_at: datetime, previous: datetime | None, *, deadline: float | None = None
    ) -> OrderState:
        """Put the post-began mark back as it was: the post failed before a byte left (connect, TLS).

        Conditional on the mark still being this post's, so a later post's mark is never undone.
        """
        values = {":began": text_value(format_time(began_at))}
        sets, removes = "", "#post_began_at"
        if previous is not None:
            sets, removes = "#post_began_at = :previous", ""
            values[":previous"] = text_value(format_time(previous))
        try:
            return self._update(
                order_id, sets, values, deadline, removes=removes, condition="#post_began_at = :began"
            )
        except _ConditionFailed as failed:
            raise StateChanged(order_id, "another post began since", _decoded(order_id, failed)) from None

    def mark_rejected(
        self, order_id: str, rejected: RejectedRecord, *, deadline: float | None = None
    ) -> OrderState:
        """Remember a 4xx for this record (ADD to a string set: no condition needed, nothing undone)."""
        entry = {":rejected": {"SS": [rejected_text(rejected)]}}
        return self._update(order_id, "", entry, deadline, adds="#rejected_records :rejected")

    # Refunds (CONTRACT §9): conditional on the version the caller decided on

    def record_cancel(
        self,
        state: OrderState,
        refund_keys: Iterable[str],
        cancelled_items: Sequence[ItemLine],
        *,
        deadline: float | None = None,
    ) -> OrderState:
        keys = frozenset(refund_keys)
        values = {":cancelled": lines_value(merge_lines(state.cancelled, cancelled_items))}
        adds = ""
        if keys:
            adds, values[":keys"] = "#refund_keys :keys", {"SS": sorted(keys)}
        return self._versioned(state, "#cancelled_items = :cancelled", values, deadline, adds=adds)

    def store_cancel_plan(
        self, state: OrderState, plan: CancelPlan, *, deadline: float | None = None
    ) -> OrderState:
        return self._versioned(
            state,
            "#cancel_plan = :plan",
            {":plan": plan_value(plan, 0, None)},
            deadline,
            extra_condition="attribute_not_exists(#cancel_plan)",
        )

    def advance_cancel_plan(self, state: OrderState, *, deadline: float | None = None) -> OrderState:
        cancelled, keys, plan, next_call = after_plan_call(state)
        values = {":cancelled": lines_value(cancelled)}
        sets, adds, removes = "#cancelled_items = :cancelled", "", ""
        if plan is not None:
            sets += ", #cancel_plan = :plan"
            values[":plan"] = plan_value(plan, next_call, None)
        else:
            removes = "#cancel_plan"
            if keys:
                adds, values[":keys"] = "#refund_keys :keys", {"SS": sorted(keys)}
        return self._versioned(state, sets, values, deadline, adds=adds, removes=removes)

    def mark_cancel_began(
        self, state: OrderState, plan: CancelPlan, at: datetime, *, deadline: float | None = None
    ) -> OrderState:
        stored = plan_to_store(state, plan)
        value = plan_value(stored, state.cancel_next_call if state.cancel_plan else 0, at)
        return self._versioned(state, "#cancel_plan = :plan", {":plan": value}, deadline)

    def clear_cancel_began(self, state: OrderState, *, deadline: float | None = None) -> OrderState:
        if state.cancel_plan is None:
            raise StateChanged(state.order_id, "no cancel plan is stored", state)
        value = plan_value(state.cancel_plan, state.cancel_next_call, None)
        return self._versioned(state, "#cancel_plan = :plan", {":plan": value}, deadline)

    def drop_cancel_plan(self, state: OrderState, *, deadline: float | None = None) -> OrderState:
        return self._versioned(state, "", {}, deadline, removes="#cancel_plan")

    # Confirmations (CONTRACT §10)

    def put_confirmation(self, confirmation: Confirmation, *, deadline: float | None = None) -> bool:
        """Store a conversion once (a repeat is not an error) and link it to its order; True if new.

        The link (a string set `confirmations` on the order-state item, ADDed without a condition) is
        written even for a repeat, so a receiver that failed between the two writes heals on resend.
        It does not move `version`: nothing a refund decides on changes.
        """
        item = confirmation_item(confirmation, self._expiration())
        new = True
        try:
            call_with_retries(
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": "id"},
                ),
                deadline,
                monotonic=self._monotonic,
                sleep=self._sleep,
            )
        except ClientError:  # only a lost condition gets here: the conversion is stored already
            new = False
        self._update(
            confirmation.order_id,
            "",
            {":cid": {"SS": [storable_text(confirmation.conversion_id)]}},
            deadline,
            adds="#confirmations :cid",
            bump_version=False,
        )
        return new

    # Plumbing

    def _expiration(self) -> int:
        return int(self._clock().timestamp()) + self._record_seconds

    def _get_item(self, key: str, deadline: float | None) -> Item | None:
        answer = call_with_retries(
            lambda: self._client.get_item(
                TableName=self._table, Key={"id": text_value(key)}, ConsistentRead=True
            ),
            deadline,
            monotonic=self._monotonic,
            sleep=self._sleep,
        )
        return answer.get("Item")

    def _versioned(
        self,
        state: OrderState,
        sets: str,
        values: dict[str, Any],
        deadline: float | None,
        *,
        adds: str = "",
        removes: str = "",
        extra_condition: str = "",
    ) -> OrderState:
        if state.version == 0:
            condition = "attribute_not_exists(#version)"
        else:
            condition = "#version = :expected"
            values = {**values, ":expected": number_value(state.version)}
        if extra_condition:
            condition += f" AND {extra_condition}"
        token = uuid.uuid4().hex
        try:
            return self._update(
                state.order_id,
                sets,
                values,
                deadline,
                adds=adds,
                removes=removes,
                condition=condition,
                token=token,
            )
        except _ConditionFailed as failed:
            current = _decoded(state.order_id, failed)
            if failed.old is not None and failed.old.get("write_id", {}).get("S") == token:
                return current or state  # our own write, applied on an attempt whose answer was lost
            found = current.version if current else 0
            raise StateChanged(
                state.order_id, f"expected version {state.version}, found {found}", current
            ) from None

    def _update(
        self,
        order_id: str,
        sets: str,
        values: Mapping[str, Any],
        deadline: float | None,
        *,
        adds: str = "",
        removes: str = "",
        condition: str = "",
        token: str | None = None,
        bump_version: bool = True,
    ) -> OrderState:
        set_parts = [
            "#kind = :kind",
            "#order_id = if_not_exists(#order_id, :order_id)",
            "#expiration = :expiration",
        ]
        all_values: dict[str, Any] = {
            ":kind": text_value("order-state"),
            ":order_id": text_value(storable_text(order_id)),
            ":expiration": number_value(self._expiration()),
            **values,
        }
        add_parts = [adds] if adds else []
        if bump_version:
            set_parts.append("#write_id = :write_id")
            all_values[":write_id"] = text_value(token or uuid.uuid4().hex)
            add_parts.append("#version :one")
            all_values[":one"] = number_value(1)
        expression = "SET " + ", ".join([*set_parts, *([sets] if sets else [])])
        if add_parts:
            expression += " ADD " + ", ".join(add_parts)
        if removes:
            expression += f" REMOVE {removes}"
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"id": text_value(state_key(order_id))},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names(expression + " " + condition),
            "ExpressionAttributeValues": all_values,
            "ReturnValues": "ALL_NEW",
        }
        if condition:
            request["ConditionExpression"] = condition
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            answer = call_with_retries(
                lambda: self._client.update_item(**request),
                deadline,
                monotonic=self._monotonic,
                sleep=self._sleep,
            )
        except ClientError as exc:  # call_with_retries lets only a lost condition through
            raise _ConditionFailed(exc.response.get("Item")) from None  # type: ignore[arg-type]
        return state_from_item(order_id, answer["Attributes"])


def _decoded(order_id: str, failed: _ConditionFailed) -> OrderState | None:
    return None if failed.old is None else state_from_item(order_id, failed.old)
