"""The payment provider protocol: the Stripe-shaped operations orderhub needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class IntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    id: str
    client_secret: str
    amount: int
    currency: str
    status: IntentStatus
    created: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    id: str
    amount: int
    status: str
    created: int
    reason: str | None = None


class ProviderError(Exception):
    """The provider could not be reached or answered with an error (not a decline)."""


class IntentNotFound(ProviderError):
    """The provider does not know this payment intent."""


class PaymentProvider(Protocol):
    name: str

    async def create_intent(
        self, *, amount: int, currency: str, order_id: str, idempotency_key: str
    ) -> PaymentIntent:
        """Create (or, for a repeated idempotency key, return) a payment intent."""

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent: ...

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        """Cancel an unpaid intent; returns the intent as it now is (it may have
        succeeded already, in which case it is returned unchanged)."""

    async def refund(
        self, *, intent_id: str, amount: int, reason: str | None, idempotency_key: str
    ) -> ProviderRefund: ...
