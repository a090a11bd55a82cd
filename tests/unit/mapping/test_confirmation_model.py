"""Refersion's conversion webhook as the receiver reads it (mapping.confirmation): ids, leniency, no PII."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from mapping.confirmation import ConversionWebhook, missing_required
from tests.support.confirmations import CUSTOMER_EMAIL, conversion_payload


def test_the_documented_payload_is_read_with_ids_as_strings() -> None:
    # Given Refersion's conversion payload with numeric ids
    webhook = ConversionWebhook.model_validate(conversion_payload(conversion_id=9001, order_id=1001))
    # Then ids are strings and the amounts exact
    assert (webhook.id, webhook.order_id, webhook.affiliate_id) == ("9001", "1001", "77")
    assert (webhook.total, webhook.commission_total) == (Decimal("12.75"), Decimal("1.28"))
    assert (webhook.status, webhook.currency, webhook.is_recurring) == ("PENDING", "USD", False)
    assert webhook.created == "2026-11-20 10:00:03"


def test_customer_and_affiliate_details_are_not_kept() -> None:
    webhook = ConversionWebhook.model_validate(conversion_payload())
    assert CUSTOMER_EMAIL not in repr(webhook.model_dump())
    assert "affiliate@example.net" not in repr(webhook.model_dump())


def test_only_the_conversion_id_and_order_id_are_required() -> None:
    webhook = ConversionWebhook.model_validate({"id": "c1", "order_id": "o1"})
    assert (webhook.status, webhook.affiliate_id, webhook.total, webhook.subscription_id) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": None}, "id"),
        ({"order_id": " "}, "order_id"),
        ({"id": 1.5}, "id"),
        ({"order_id": True}, "order_id"),
    ],
)
def test_a_missing_or_malformed_id_is_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ConversionWebhook.model_validate(conversion_payload(**changes))
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


def test_odd_optional_fields_are_left_out_rather_than_refused() -> None:
    # Given optional fields Refersion might spell differently
    webhook = ConversionWebhook.model_validate(
        conversion_payload(total="n/a", affiliate="77", is_recurring="1", status={"x": 1}, subscription_id=55)
    )
    # Then what cannot be read is None and the conversion is still accepted
    assert (webhook.total, webhook.affiliate_id, webhook.is_recurring, webhook.status) == (
        None,
        None,
        True,
        None,
    )
    assert webhook.subscription_id == "55"


def test_missing_required_names_the_first_missing_field_in_check_order() -> None:
    assert missing_required({}) == "no order_id"
    assert missing_required({"order_id": "1"}) == "no conversion id"
    assert missing_required({"order_id": 1, "id": 2}) is None
