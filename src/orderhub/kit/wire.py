"""Wire types shared by every API: exact amounts in, JSON numbers out, timestamps, pages."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Protocol

from fastapi import Query
from pydantic import AfterValidator, BaseModel, Field, PlainValidator, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError


def _exact_number(value: object) -> Decimal:
    """A JSON number as read by the strict body parser (int or Decimal); never a string."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PydanticCustomError("number_type", "must be a number")
    number = Decimal(value)
    if not number.is_finite():
        raise PydanticCustomError("number_type", "must be a finite number")
    return number


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise PydanticCustomError("number_negative", "must be greater than or equal to 0")
    return value


Amount = Annotated[
    Decimal,
    PlainValidator(_exact_number),
    AfterValidator(_not_negative),
    WithJsonSchema({"type": "number", "minimum": 0, "examples": [29.99]}),
]
Text100 = Annotated[StrictStr, Field(min_length=1, max_length=100)]


JsonAmount = Annotated[
    int | float,
    WithJsonSchema({"type": "number", "description": "major units, e.g. 109.97"}),
]
Timestamp = Annotated[str, Field(examples=["2025-11-29T10:30:00.000Z"])]


class PaginationOut(BaseModel):
    lastKey: str | None
    hasMore: bool


# The query of a paged list: `limit` (default 20) and the `lastKey` of the page before.
PageLimit = Annotated[int, Query(ge=1, le=100)]
PageKey = Annotated[str | None, Query(max_length=512)]
IdFilter = Annotated[str | None, Query(max_length=100)]


class Page(Protocol):
    @property
    def last_key(self) -> str | None: ...

    @property
    def has_more(self) -> bool: ...


def pagination_out(page: Page) -> PaginationOut:
    return PaginationOut(lastKey=page.last_key, hasMore=page.has_more)
