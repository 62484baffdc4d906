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

    def __init_subclass__(
        cls, *, status: int | None = None, code: str | None = None, retryable: bool = False
    ) -> None:
        """`class NotFound(AppError, status=404, code="not_found")`: a kind of error is its
        HTTP status and its code; what a subclass leaves out it inherits."""
        super().__init_subclass__()
        if status is not None:
            cls.status_code = status
        if code is not None:
            cls.code = code
        if retryable:
            cls.retryable = True

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


class ValidationFailed(AppError, status=400, code="validation_error"):
    """400: `Validation error: <field> <problem>` for the first problem, all in details."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        if not problems:
            raise ValueError("ValidationFailed needs at least one problem")
        super().__init__(f"Validation error: {problems[0].sentence()}", details=problems)

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls([FieldProblem(field, message)])


class BadRequest(AppError, status=400, code="bad_request"):
    """The request cannot be taken as it is (e.g. a malformed body or query)."""


class Unauthorized(AppError, status=401, code="unauthorized"):
    """No valid credentials (API key or JWT)."""


class PaymentDeclined(AppError, status=402, code="card_declined"):
    """The payment provider declined the payment method."""


class NotFound(AppError, status=404, code="not_found"):
    """No such resource, or no such route."""


class Conflict(AppError, status=409, code="conflict"):
    """The resource's current state does not allow the change."""


class Contended(Conflict, code="contended", retryable=True):
    """Other requests kept changing the same resource; trying again will work."""


class PayloadTooLarge(AppError, status=413, code="payload_too_large"):
    """The body is larger than the configured limit."""


class IdempotencyMismatch(AppError, status=422, code="idempotency_key_reused"):
    """An Idempotency-Key sent again with a different request."""


class UpstreamError(AppError, status=502, code="upstream_error"):
    """A provider orderhub called failed or did not answer."""


class ServiceUnavailable(AppError, status=503, code="service_unavailable"):
    """A backend orderhub needs is not available."""
