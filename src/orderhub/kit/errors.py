"""Typed errors that carry their HTTP status; rendered once, in the envelope, by app.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str

    def sentence(self) -> str:
        return f"{self.field} {self.message}" if self.field else self.message


class AppError(Exception):
    status_code: int = 500
    code: str | None = None
    # A retry of the same request may well succeed (e.g. it lost a race): not remembered
    # by Idempotency-Key, like a 5xx.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[FieldProblem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = list(details)
        self.headers = dict(headers or {})


class ValidationFailed(AppError):
    """400: `Validation error: <field> <problem>` for the first problem, all in details."""

    status_code = 400
    code = "validation_error"

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        if not problems:
            raise ValueError("ValidationFailed needs at least one problem")
        super().__init__(f"Validation error: {problems[0].sentence()}", details=problems)

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls([FieldProblem(field, message)])


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class PaymentDeclined(AppError):
    status_code = 402
    code = "card_declined"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Contended(Conflict):
    """Other requests kept changing the same resource; trying again will work."""

    code = "contended"
    retryable = True


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class IdempotencyMismatch(AppError):
    status_code = 422
    code = "idempotency_key_reused"


class UpstreamError(AppError):
    status_code = 502
    code = "upstream_error"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
