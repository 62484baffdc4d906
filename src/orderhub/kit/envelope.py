"""The seed's envelope: `{success, data, message?}` and `{success: false, error: {...}}`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from starlette.responses import Response

from orderhub.kit.errors import AppError, FieldProblem

T = TypeVar("T")


class ProblemOut(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    message: str = Field(examples=["Validation error: customerEmail must be a valid email"])
    code: str | None = None
    details: list[ProblemOut] | None = None


class ErrorEnvelope(BaseModel):
    success: bool = Field(default=False, examples=[False])
    error: ErrorOut


class Envelope(BaseModel, Generic[T]):
    success: bool = Field(default=True, examples=[True])
    data: T
    message: str | None = None


class MessageEnvelope(BaseModel):
    success: bool = Field(default=True, examples=[True])
    message: str


def json_bytes(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class EnvelopeResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def ok(
    data: Any = None,
    *,
    message: str | None = None,
    status_code: int = 200,
    include_data: bool = True,
    headers: Mapping[str, str] | None = None,
) -> EnvelopeResponse:
    body: dict[str, Any] = {"success": True}
    if include_data:
        body["data"] = data
    if message is not None:
        body["message"] = message
    return EnvelopeResponse(body, status_code=status_code, headers=dict(headers or {}))


def error_body(
    message: str, *, code: str | None = None, details: Sequence[FieldProblem] = ()
) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if code:
        error["code"] = code
    if details:
        error["details"] = [{"field": p.field, "message": p.message} for p in details]
    return {"success": False, "error": error}


def error_response(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    details: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
) -> EnvelopeResponse:
    return EnvelopeResponse(
        error_body(message, code=code, details=details),
        status_code=status_code,
        headers=dict(headers or {}),
    )


def app_error_response(exc: AppError) -> EnvelopeResponse:
    return error_response(
        exc.status_code, exc.message, code=exc.code, details=exc.details, headers=exc.headers
    )


ERROR_DESCRIPTIONS = {
    400: "Validation error or malformed request",
    401: "Missing or invalid credentials",
    402: "Card declined",
    404: "Not found",
    409: "State conflict, or the same Idempotency-Key is still in flight",
    413: "Request body larger than MAX_BODY_BYTES",
    422: "Idempotency-Key reused with a different request",
    429: "Too many requests (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_SECONDS); see Retry-After",
    500: "Unexpected failure (recorded for operators)",
    502: "The payment provider failed",
    503: "The store does not answer",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error envelope for each status code."""
    # Every route may also meet a store that does not answer, or an unexpected failure.
    return {
        code: {"model": ErrorEnvelope, "description": ERROR_DESCRIPTIONS.get(code, "Error")}
        for code in (*codes, 500, 503)
    }
