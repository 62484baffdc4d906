"""The sandbox provider's flat records, field by field, for every backend's mapper.

`SandboxIntent` and `SandboxRefund` are stored one attribute (or column) per field, under
the field's name; a backend says only how it writes and reads one value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from orderhub.store.protocol import SandboxIntent, SandboxRefund

R = TypeVar("R", SandboxIntent, SandboxRefund)


def values_of(record: SandboxIntent | SandboxRefund) -> dict[str, Any]:
    """Field name -> value."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def record_from(kind: type[R], value: Callable[[str, str], Any]) -> R:
    """A `kind` whose every field is `value(name, type)`; the type is the annotation as
    written in `store/protocol.py` (`"int"`, `"str | None"`, ...)."""
    return kind(**{f.name: value(f.name, _written(f.type)) for f in fields(kind)})


def _written(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    return str(getattr(annotation, "__name__", annotation))


def text_map(value: Mapping[Any, Any] | None) -> dict[str, str]:
    """Metadata as read back: keys and values are text."""
    return {str(k): str(v) for k, v in (value or {}).items()}
