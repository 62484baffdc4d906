"""Strict JSON request bodies: exact decimals, no NaN/Infinity, an object at the top."""

from __future__ import annotations

import json
import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any

from orderhub.kit.errors import BadRequest, ValidationFailed


class MalformedJson(BadRequest):
    code = "malformed_json"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Deeper than any body orderhub reads (an order is 3 levels, a Stripe event under 10);
# checked before parsing, without recursion, so no nesting reaches Python's limit.
MAX_DEPTH = 64
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in `raw` (brackets inside strings do not count).
    Linear, iterative; for malformed input it is an upper bound, which is all a limit needs."""
    depth = deepest = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class TooDeep(ValueError):
    """Nested deeper than MAX_DEPTH."""


def loads_bounded(text: str | bytes, **options: Any) -> Any:
    """`json.loads` that refuses nesting deeper than MAX_DEPTH (TooDeep, a ValueError)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if nesting_depth(raw) > MAX_DEPTH:
        raise TooDeep(f"JSON nested deeper than {MAX_DEPTH} levels")
    return json.loads(text, **options)


def parse_json(raw: bytes) -> Any:
    """Parse a body keeping every number exact: integers as int, fractions as Decimal."""
    try:
        text = raw.decode("utf-8")
        return loads_bounded(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedJson("Malformed JSON in request body") from None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise ValidationFailed.one("body", "is required")
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise ValidationFailed.one("body", "must be a JSON object")
    if _has_nul(value):
        # no store keeps NUL in text (PostgreSQL refuses it): refuse it at the door
        raise ValidationFailed.one("body", "must not contain NUL characters")
    return value


def _canonical_number(value: Decimal) -> str:
    """Equal numbers alike (`109.97`, `109.970`, `1.0997E2`); tagged with a NUL, which no
    accepted body's strings contain, so a number never equals a string."""
    if not value.is_finite():
        return f"\x00n:{value}"
    # normalised at the number's own precision: trailing zeros go, no digit is rounded
    digits = max(1, len(value.as_tuple().digits))
    return "\x00n:" + str(value.normalize(Context(prec=digits, Emax=MAX_EMAX, Emin=MIN_EMIN)))


def _numbers_as_decimals(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, dict):
        return {k: _numbers_as_decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_decimals(v) for v in value]
    return value


def canonical_json(raw: bytes) -> str:
    """The body as canonical JSON for comparison: sorted keys, no spaces, and numbers
    compared by value (`109.97` and `109.970` are the same request, `110` and `110.0`
    too)."""
    if not raw.strip():
        return ""
    return json.dumps(
        _numbers_as_decimals(parse_json(raw)),
        sort_keys=True,
        separators=(",", ":"),
        default=_canonical_number,
    )
