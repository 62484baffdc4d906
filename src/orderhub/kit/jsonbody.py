"""Strict JSON request bodies: exact decimals, no NaN/Infinity, an object at the top."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from orderhub.kit.errors import BadRequest, ValidationFailed


class MalformedJson(BadRequest):
    code = "malformed_json"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Parse a body keeping every number exact: integers as int, fractions as Decimal."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
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


def canonical_json(raw: bytes) -> str:
    """The body as canonical JSON (sorted keys, no spaces, exact numbers) for comparison."""
    if not raw.strip():
        return ""
    return json.dumps(parse_json(raw), sort_keys=True, separators=(",", ":"), default=str)
