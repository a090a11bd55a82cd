"""Text that SQS accepts, in a message body or a message attribute (CONTRACT §6).

SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF (its documented
character set); a message with anything else is refused whole. Checked here rather than left to the
service, so that a record's content can never make its quarantine fail.
"""

from __future__ import annotations

import re

# Everything outside the set above: C0 controls except tab/LF/CR, surrogates, U+FFFE and U+FFFF.
_UNSENDABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def is_sendable(text: str) -> bool:
    return _UNSENDABLE.search(text) is None


def sendable_text(text: str) -> str:
    """The text with every character SQS refuses written as `\\uXXXX`.

    In JSON text written by json.dumps such characters can only stand inside strings, where `\\uXXXX`
    is the JSON escape of the same character: the text still reads back as the same value.
    """
    if is_sendable(text):
        return text
    return _UNSENDABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def utf8_size(text: str) -> int:
    """Bytes of the text in UTF-8, as SQS and EventBridge count them (a lone surrogate counts 3)."""
    return len(text.encode("utf-8", "surrogatepass"))
