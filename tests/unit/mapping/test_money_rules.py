"""The money rules of mapping.fields.amount: accepted amounts go out as plain, exact JSON numbers."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mapping
from mapping.fields import amount
from mapping.refersion import plain_number

_PLAIN_JSON_NUMBER = re.compile(rb"[0-9]+\.[0-9]+")


@pytest.mark.parametrize("minus_zero", [-0.0, "-0", "-0.00", " -0.0 "])
def test_zero_written_with_a_minus_sign_is_zero_whatever_its_form(minus_zero: object) -> None:
    # Given zero with a minus sign, as a JSON number or as a string; Then both are the amount 0
    assert plain_number(amount(minus_zero)) == "0.0"


@pytest.mark.parametrize(
    ("value", "sent"), [("0.0000001", "0.0000001"), (1e-7, "0.0000001"), (1e-5, "0.00001")]
)
def test_tiny_amounts_go_out_as_plain_numbers_without_exponent(value: object, sent: str) -> None:
    assert plain_number(amount(value)) == sent


def test_a_tiny_amount_in_a_body_is_written_without_exponent(order_event: object) -> None:
    # Given an order whose tax is a tenth of a millionth
    event = order_event(tax="0.0000001")  # type: ignore[operator]
    # When its body is written; Then the number is plain decimal text
    assert b'"tax":0.0000001,' in mapping.map_order(event).to_json_bytes()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (999999999999999.9, "is 1000000000000000 to the 15 significant digits a JSON number carries"),
        ("999999999999999.9", "has more than 15 significant digits"),
    ],
)
def test_an_amount_past_15_significant_digits_is_refused_with_the_reason(value: object, words: str) -> None:
    with pytest.raises(Exception, match=re.escape(words)):
        amount(value)


_amount_texts = st.builds(
    lambda whole, fraction: f"{whole}.{fraction}" if fraction else str(whole),
    st.integers(min_value=0, max_value=10**15 - 1),
    st.one_of(st.just(""), st.from_regex(r"[0-9]{1,9}", fullmatch=True)),
)


@settings(max_examples=80, derandomize=True, deadline=None)
@given(_amount_texts)
def test_every_accepted_string_amount_is_sent_as_a_plain_number_equal_to_it(text: str) -> None:
    # Given any plain decimal string; When it is accepted
    try:
        accepted = amount(text)
    except Exception:
        assert len(Decimal(text).normalize().as_tuple().digits) > 15  # refused only past 15 digits
        return
    # Then its JSON text is plain decimal (no exponent) and reads back as exactly the same value
    sent = plain_number(accepted).encode()
    assert _PLAIN_JSON_NUMBER.fullmatch(sent)
    assert json.loads(sent, parse_float=Decimal) == Decimal(text)


@settings(max_examples=80, derandomize=True, deadline=None)
@given(st.floats(min_value=0, max_value=1e15, allow_nan=False, exclude_max=True))
def test_every_accepted_json_number_is_sent_plain_and_read_back_as_the_same_double(value: float) -> None:
    try:
        accepted = amount(value)
    except Exception:
        assert value >= 999999999999999.5  # only what rounds to 10^15 at 15 digits is refused
        return
    sent = plain_number(accepted).encode()
    assert _PLAIN_JSON_NUMBER.fullmatch(sent)
    # Within the 15 digits a double carries: the reader gets the producer's number, minus binary noise
    assert float(sent) == pytest.approx(value, rel=1e-14, abs=0)
