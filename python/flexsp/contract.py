"""The contract every document between the halves goes through (docs/CONTRACT.md): the strict
JSON reader, the field readers and the limits, the mirror of the planner's
`Sources/FlexSPCore/StrictJSON.swift` and `Limits.swift`.

    document = parse_document(text, "plan", PlanError)
    integer(document["step"], "step", PlanError)
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_WORLD_SIZE = 1 << 20
MAX_SEQUENCE_LENGTH = 1 << 40
MAX_TOKEN_CAPACITY = 1 << 42
MAX_DOCUMENT_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
INT64 = 1 << 63  # integers a field may hold: Swift's Int, -2^63 ..< 2^63


class ContractError(ValueError):
    """A document that breaks the contract; the message names the field or place at fault."""


def printable(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, control characters escaped (as the planner does)."""
    out = []
    for ch in text[:limit]:
        code = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or 0x7F <= code < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\u{{{code:x}}}")
        else:
            out.append(ch)
    return "'" + "".join(out) + ("..." if len(text) > limit else "") + "'"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ContractError(f"duplicate key {printable(key)}")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise ContractError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ContractError(f"the number {printable(text, 30)} is out of range")
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, without recursion (a hostile document cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_strict(text: str | bytes) -> Any:
    """RFC 8259 JSON as the planner reads it: no NaN/Infinity, no duplicate keys, no number
    beyond a double's range, at most 64 levels deep, at most 16 MiB. ContractError otherwise."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ContractError(f"the document has {len(text)} bytes, more than the limit of {MAX_DOCUMENT_BYTES}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ContractError(f"the document is not UTF-8 text (byte {error.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant,
                           parse_float=_finite_float)
    except ContractError:
        raise
    except json.JSONDecodeError as error:
        raise ContractError(f"line {error.lineno}, column {error.colno}: {error.msg}") from None
    except (RecursionError, ValueError) as error:
        raise ContractError(f"not valid JSON ({type(error).__name__})") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ContractError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def parse_document(text: str | bytes, what: str, error: type[ContractError]) -> Any:
    """`loads_strict`, with a failure raised as `error` naming the document (`what`)."""
    try:
        return loads_strict(text)
    except ContractError as problem:
        raise error(f"{what} is not valid JSON: {problem}") from None


def integer(value: Any, field: str, error: type[ContractError] = ContractError) -> int:
    """A JSON integer field: an integral number (8, 8.0) within 64 bits; never a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"field '{field}' should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise error(f"field '{field}' should be an integer in range, got {value!r}")
        value = int(value)
    if not -INT64 <= value < INT64:
        raise error(f"field '{field}' should be an integer in range, got {value}")
    return value


def number(value: Any, field: str, error: type[ContractError] = ContractError) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"field '{field}' should be a number")
    result = float(value)
    if not math.isfinite(result):
        raise error(f"field '{field}' should be a finite number")
    return result
