"""Wire shapes of the sandbox's JSON confirm (Stripe's, not orderhub's envelope)."""

from __future__ import annotations

from pydantic import BaseModel


class StripeError(BaseModel):
    type: str
    code: str
    message: str
    param: str | None = None


class StripeErrorOut(BaseModel):
    """Stripe's error body: `{"error": {type, code, message, param?}}`."""

    error: StripeError
