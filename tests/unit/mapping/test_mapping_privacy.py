"""Consent and personal data (CONTRACT §7)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from mapping import consent_denied, is_sha256_hex, mask_email, mask_ip

# --- consent_denied ----------------------------------------------------------------------

DENIALS = [False, "false", "FALSE", " False ", "denied", "Denied", "no", "NO", "0"]
NOT_DENIALS = [True, "true", "granted", "yes", "1", "", None, 0, 1, [], {}, "maybe"]


def _event_with_consent(consent: object) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "context": {"consent": consent}}


@pytest.mark.parametrize("value", DENIALS)
def test_given_a_denied_category_when_checked_then_consent_is_denied(value: object) -> None:
    assert consent_denied(_event_with_consent({"marketing": value}), "marketing") is True


@pytest.mark.parametrize("value", DENIALS)
def test_given_a_denied_canonical_category_when_checked_then_consent_is_denied(value: object) -> None:
    assert consent_denied(_event_with_consent({"canonical": {"marketing": value}}), "marketing") is True


@pytest.mark.parametrize("value", NOT_DENIALS)
@pytest.mark.parametrize("shape", ["direct", "canonical"])
def test_given_consent_that_is_not_an_explicit_no_when_checked_then_deliver(
    value: object, shape: str
) -> None:
    consent = {"marketing": value} if shape == "direct" else {"canonical": {"marketing": value}}

    assert consent_denied(_event_with_consent(consent), "marketing") is False


def test_given_granted_directly_but_denied_canonically_when_checked_then_consent_is_denied() -> None:
    event = _event_with_consent({"marketing": True, "canonical": {"marketing": False}})

    assert consent_denied(event, "marketing") is True


def test_given_another_category_denied_when_checked_then_the_configured_one_decides() -> None:
    event = _event_with_consent({"analytics": False, "marketing": True})

    assert consent_denied(event, "marketing") is False
    assert consent_denied(event, "analytics") is True


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"context": None},
        {"context": "x"},
        {"context": {}},
        {"context": {"consent": None}},
        {"context": {"consent": "false"}},
        {"context": {"consent": ["marketing"]}},
        {"context": {"consent": {"canonical": "false"}}},
        {"context": {"consent": {"canonical": ["marketing"]}}},
    ],
)
def test_given_no_usable_consent_data_when_checked_then_deliver(event: dict[str, Any]) -> None:
    assert consent_denied(event, "marketing") is False


# --- is_sha256_hex -----------------------------------------------------------------------

DIGEST = hashlib.sha256(b"jdoe@domain.com").hexdigest()


@pytest.mark.parametrize("value", [DIGEST, DIGEST.upper(), "0" * 64])
def test_given_a_sha256_hex_digest_when_checked_then_it_is_recognised(value: str) -> None:
    assert is_sha256_hex(value)


@pytest.mark.parametrize(
    "value",
    [DIGEST[:63], DIGEST + "0", DIGEST[:63] + "g", "jdoe@domain.com", "", DIGEST + "\n", " " + DIGEST],
)
def test_given_anything_else_when_checked_then_it_is_not_a_digest(value: str) -> None:
    assert not is_sha256_hex(value)


# --- mask_email --------------------------------------------------------------------------

EMAILS = [
    "jdoe@domain.com",
    "a@b.co",
    "john.smith+promo@mail.example.co.uk",
    "x@localhost",
    "no-at-sign.example.com",
    "weird@@double.org",
    "@domain.com",
    "user@",
]


def test_given_the_seed_email_when_masked_then_only_first_letters_and_tld_remain() -> None:
    assert mask_email("jdoe@domain.com") == "j***@d***.com"


@pytest.mark.parametrize("email", EMAILS)
def test_given_an_email_when_masked_then_the_raw_value_never_shows(email: str) -> None:
    masked = mask_email(email)

    assert email not in masked
    local, _, domain = email.rpartition("@")
    if len(local) > 1:
        assert local not in masked
    if len(domain) > 1 and "." in domain:
        assert domain not in masked
    assert mask_email(email) == masked  # deterministic


# --- mask_ip -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "masked"),
    [
        ("234.192.4.75", "234.192.x.x"),
        (" 10.0.0.1 ", "10.0.x.x"),
        ("2001:db8:85a3::8a2e:370:7334", "2001:db8:x:x:x:x:x:x"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8:x:x:x:x:x:x"),
        ("::1", "0:0:x:x:x:x:x:x"),
        ("not an ip", "***"),
        ("234.192.4.75, 10.0.0.1", "***"),
        ("", "***"),
    ],
)
def test_given_an_ip_when_masked_then_only_the_network_part_remains(ip: str, masked: str) -> None:
    assert mask_ip(ip) == masked
    if ip.strip():
        assert ip.strip() not in mask_ip(ip)
