"""Why an event cannot be delivered, in words an operator can act on (CONTRACT §5 "invalid")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

# Reasons travel into logs and queue attributes: quote at most this much of a value.
_MAX_SHOWN_CHARS = 40
# Above this, str(int) is slow (or refused by Python's digit limit) and useless to a reader.
_MAX_SHOWN_INT = 10**_MAX_SHOWN_CHARS


class InvalidEvent(Exception):
    """The event breaks the contract of CONTRACT §2-3. `reasons` lists every problem found."""

    reasons: tuple[str, ...]

    def __init__(self, reasons: Iterable[str]) -> None:
        # A lone string is one reason, not a sequence of one-letter reasons.
        self.reasons = (reasons,) if isinstance(reasons, str) else tuple(reasons)
        super().__init__("; ".join(self.reasons))

    def __reduce__(self) -> tuple[type[InvalidEvent], tuple[tuple[str, ...]]]:
        # Exception pickles its args (the joined text); rebuild from the reasons instead.
        return (type(self), (self.reasons,))


def kind_of(value: object) -> str:
    """Name the JSON type of a value without showing the value (safe for personal fields)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "a string" if value.strip() else "an empty string"
    for types, kind in _JSON_KINDS:
        if isinstance(value, types):
            return kind
    return "null" if value is None else f"a {type(value).__name__}"


_JSON_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    ((int, float), "a number"),
    ((list, tuple), "a list"),
    (Mapping, "an object"),
)


def shown(value: object) -> str:
    """Quote a (non-personal) value briefly, as JSON would spell it, for a reason line."""
    if isinstance(value, str):
        return repr(value if len(value) <= _MAX_SHOWN_CHARS else value[:_MAX_SHOWN_CHARS] + "...")
    if isinstance(value, float):
        return json.dumps(value)  # NaN, Infinity and 1e+300 spelled the JSON way
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if -_MAX_SHOWN_INT < value < _MAX_SHOWN_INT else "a very large number"
    return kind_of(value)


def problem(words: str) -> PydanticCustomError:
    """A validation failure whose message is already the reason text (no pydantic wording)."""
    # The text goes in through the context so that braces in quoted input are not read as a template.
    return PydanticCustomError("relay_rule", "{words}", {"words": words})


# Pydantic's structural errors, said the way CONTRACT readers think of JSON.
_EXPECTED_TYPE = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "a string",
    "bool_type": "true or false",
}


def reasons_from(error: ValidationError) -> tuple[str, ...]:
    """Turn a pydantic ValidationError into CONTRACT-worded "<path>: <problem>" lines."""
    details = error.errors(include_url=False, include_context=True, include_input=True)
    return tuple(dict.fromkeys(f"{path_of(detail['loc'])}: {_words(detail)}" for detail in details))


def path_of(loc: tuple[int | str, ...]) -> str:
    """("properties", "products", 0, "price") -> "properties.products[0].price"."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "event"


_FIXED_WORDS = {"missing": "is required", "string_too_short": "must not be empty"}


def _words(detail: ErrorDetails) -> str:
    kind = detail["type"]
    context = detail.get("ctx") or {}
    if kind == "relay_rule":
        return str(context["words"])
    if kind in _FIXED_WORDS:
        return _FIXED_WORDS[kind]
    if kind in _EXPECTED_TYPE:
        return _wrong_type(detail)
    if kind == "string_too_long":
        length = len(detail.get("input") or "")
        return f"must be at most {context.get('max_length')} characters long, got {length}"
    # Not expected from our models; pydantic's own sentence is the best we have.
    return detail["msg"].removeprefix("Value error, ")


def _wrong_type(detail: ErrorDetails) -> str:
    value: Any = detail.get("input")
    loc = detail["loc"]
    if value is None and loc and isinstance(loc[-1], str):
        return "is required"  # a named field sent as null is as good as missing
    return f"must be {_EXPECTED_TYPE[detail['type']]}, got {kind_of(value)}"
