"""Pydantic errors -> `Validation error: <field> <problem>` with every problem in details."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request

from orderhub.kit.errors import FieldProblem, ValidationFailed
from orderhub.kit.jsonbody import parse_json_object

M = TypeVar("M", bound=BaseModel)

_LOCATION_PREFIXES = {"body", "query", "path", "header", "cookie"}


def _name(part: str) -> str:
    """A field name as it can be shown: printable, and visible when empty."""
    if not part:
        return '""'
    if not part.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in part):
        return part.encode("unicode_escape", "backslashreplace").decode("ascii")
    return part


def field_path(loc: Sequence[int | str]) -> str:
    """`("items", 0, "price")` -> `items[0].price`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{_name(part)}"
        else:
            path = _name(part)
    return path


def _plural(count: Any, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def problem_message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    simple = {
        "missing": "is required",
        "extra_forbidden": "is not a known field",
        "string_type": "must be a string",
        "string_unicode": "must be a valid string",
        "int_type": "must be an integer",
        "int_from_float": "must be an integer",
        "int_parsing": "must be an integer",
        "bool_type": "must be a boolean",
        "bool_parsing": "must be a boolean",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
        "list_type": "must be an array",
        "uuid_parsing": "must be a valid UUID",
        "uuid_type": "must be a valid UUID",
    }
    if kind in simple:
        return simple[kind]
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"must be at least {_plural(ctx.get('min_length'), 'character')} long"
    if kind == "string_too_long":
        return f"must be at most {_plural(ctx.get('max_length'), 'character')} long"
    if kind == "too_short":
        return f"must contain at least {_plural(ctx.get('min_length'), 'item')}"
    if kind == "too_long":
        return f"must contain at most {_plural(ctx.get('max_length'), 'item')}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        words = {
            "greater_than_equal": ("ge", "at least"),
            "greater_than": ("gt", "greater than"),
            "less_than_equal": ("le", "at most"),
            "less_than": ("lt", "less than"),
        }[kind]
        return f"must be {words[1]} {ctx.get(words[0])}"
    if kind in {"literal_error", "enum"}:
        return f"must be one of {ctx.get('expected', '')}".rstrip()
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def problems_from(
    errors: Iterable[ErrorDetails], *, prefix: Sequence[int | str] = ()
) -> list[FieldProblem]:
    problems = []
    for error in errors:
        loc = list(error.get("loc") or ())
        if loc and loc[0] in _LOCATION_PREFIXES:
            loc = loc[1:]
        message = problem_message(error)
        if loc and loc[-1] == "[key]":
            # a mapping's key is wrong: name the mapping, not Pydantic's marker
            loc = loc[:-2]
            message = f"keys {message}"
        if not loc:
            loc = ["body"]
        problems.append(FieldProblem(field_path([*prefix, *loc]), message))
    return problems


def validation_failed(exc: ValidationError) -> ValidationFailed:
    return ValidationFailed(problems_from(exc.errors()))


def validate_model(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc) from None


async def read_model(request: Request, model: type[M]) -> tuple[bytes, M]:
    """The request's raw body (for Idempotency-Key's fingerprint) and `model` read from it."""
    raw = await request.body()
    return raw, validate_model(model, parse_json_object(raw))
