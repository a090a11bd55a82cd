"""Consent and personal data (CONTRACT §7): when not to send, and how to log what was sent."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_DENIED_WORDS = frozenset({"false", "denied", "no", "0"})
_MASK = "***"


def consent_denied(event: Mapping[str, Any], category: str) -> bool:
    """True only when context.consent.<category> (or its .canonical twin) explicitly says no.

    No consent data, or a value we do not understand, means deliver (CONTRACT §7).
    """
    context = event.get("context") if isinstance(event, Mapping) else None
    consent = context.get("consent") if isinstance(context, Mapping) else None
    if not isinstance(consent, Mapping):
        return False
    canonical = consent.get("canonical")
    canonical_value = canonical.get(category) if isinstance(canonical, Mapping) else None
    return _is_denial(consent.get(category)) or _is_denial(canonical_value)


def _is_denial(value: object) -> bool:
    if isinstance(value, bool):
        return value is False
    return isinstance(value, str) and value.strip().lower() in _DENIED_WORDS


def is_sha256_hex(value: str) -> bool:
    """A SHA-256 digest in hex (64 hex digits, any case): what hashed-email pipelines send."""
    return _SHA256_HEX.fullmatch(value) is not None


def mask_email(value: str) -> str:
    """'jdoe@domain.com' -> 'j***@d***.com': recognisable in a log, never the address itself."""
    local, at, domain = value.rpartition("@")
    if not at:
        return _mask_word(value)
    host, dot, top_level = domain.rpartition(".")
    if not dot:
        return f"{_mask_word(local)}@{_mask_word(domain)}"
    return f"{_mask_word(local)}@{_mask_word(host)}.{top_level}"


def _mask_word(word: str) -> str:
    # A one-letter word would be shown whole, so it is hidden entirely.
    return word[0] + _MASK if len(word) > 1 else _MASK


def mask_ip(value: str) -> str:
    """Keep the network part: IPv4 '234.192.4.75' -> '234.192.x.x'; IPv6 keeps its first two groups."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return _MASK  # not an address we can cut safely: hide it all
    if address.version == 4:
        first, second, _, _ = str(address).split(".")
        return f"{first}.{second}.x.x"
    groups = address.exploded.split(":")
    return ":".join([*(format(int(group, 16), "x") for group in groups[:2]), *["x"] * 6])


_EMAIL_IN_TEXT = re.compile(r"[^\s@\"'<>,;:()\[\]{}]+@[^\s@\"'<>,;:()\[\]{}]+\.[A-Za-z]{2,}")
_IPV4_IN_TEXT = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
# Runs of hex digits, colons and dots with at least two colons (an optional %zone after): IPv6 candidates.
# Only runs that ipaddress accepts are masked, so times (10:30:00) and MAC addresses stay readable.
_IPV6_CANDIDATE = re.compile(r"[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.~-]+)?")
# What an address can be made of: a cut text's last run of these may be the start of one.
_FRAGMENT_AT_END = re.compile(r"[^\s\"'<>,;()\[\]{}]+$")
_CUT_MARK = "…"


def scrub_text(text: str) -> str:
    """Mask anything that looks like an email, an IPv6 or an IPv4 address in free text (e.g. a response
    body quoted in a reason), so a third party's echo of the order cannot leak them into logs."""
    masked = _EMAIL_IN_TEXT.sub(lambda found: mask_email(found.group(0)), text)
    masked = _IPV6_CANDIDATE.sub(lambda found: _mask_ipv6_run(found.group(0)), masked)
    return _IPV4_IN_TEXT.sub(lambda found: mask_ip(found.group(0)), masked)


def scrub_excerpt(text: str, max_chars: int, *, cut: bool = False) -> str:
    """scrub_text, then at most max_chars characters of the result.

    Masking comes before cutting, so an address across the limit is still recognised whole. Wherever
    the text is cut (here, or before it got here when `cut` is true: e.g. the first bytes of a body),
    the last word at the cut edge is dropped: it may be the start of an address, no longer recognisable.
    """
    if cut:
        text = _drop_cut_fragment(text)
    masked = scrub_text(text)
    if len(masked) <= max_chars:
        return masked.strip()
    return _drop_cut_fragment(masked[:max_chars]).strip() + _CUT_MARK


def _drop_cut_fragment(text: str) -> str:
    return _FRAGMENT_AT_END.sub("", text)


def _mask_ipv6_run(run: str) -> str:
    """Mask the IPv6 address in a candidate run, allowing for a label before it and a full stop after."""
    trailing = run[len(run.rstrip(".")) :]
    core = run[: len(run) - len(trailing)]
    for start in [0, *(i + 1 for i, char in enumerate(core) if char == ":")]:
        candidate = core[start:]
        if candidate.count(":") < 2:
            break
        if _is_ipv6(candidate):
            return core[:start] + mask_ip(candidate.split("%")[0]) + trailing
    return run


def _is_ipv6(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 6
    except ValueError:
        return False
