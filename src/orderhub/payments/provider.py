"""The payment provider protocol: the Stripe-shaped operations orderhub needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class IntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")

# The test payment methods that behave the same in the sandbox and in Stripe's test mode.
PM_SUCCEEDS = "pm_card_visa"
PM_DECLINED = "pm_card_chargeDeclined"
PM_NEEDS_AUTHENTICATION = "pm_card_authenticationRequired"


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    id: str
    client_secret: str
    amount: int
    currency: str
    status: IntentStatus
    created: int
    metadata: dict[str, str] = field(default_factory=dict)
    latest_charge: str | None = None
    next_action: dict[str, Any] | None = None
    last_payment_error: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    id: str
    amount: int
    status: str
    created: int
    currency: str
    payment_intent: str | None
    reason: str | None = None
    local_id: str | None = None  # orderhub's refund id, sent as metadata[orderhub_refund_id]


REFUND_ID_METADATA = "orderhub_refund_id"


class ProviderError(Exception):
    """The provider could not be reached, or failed (not a decline, not a bad request)."""


class IntentNotFound(ProviderError):
    """The provider does not know this payment intent."""


class ProviderRejected(ProviderError):
    """The provider refused the request as invalid (Stripe's 400s): nothing happened."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class CardDeclined(ProviderError):
    """The card was declined; `intent` is the intent as it is after the decline."""

    def __init__(
        self, message: str, intent: PaymentIntent | None, decline_code: str | None
    ) -> None:
        super().__init__(message)
        self.intent = intent
        self.decline_code = decline_code


class PaymentProvider(Protocol):
    @property
    def name(self) -> str: ...

    async def create_intent(
        self, *, amount: int, currency: str, order_id: str, idempotency_key: str
    ) -> PaymentIntent:
        """Create (or, for a repeated idempotency key, return) a payment intent."""

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent: ...

    async def confirm_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        """Confirm server-side with a payment method; CardDeclined on a decline."""

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        """Cancel an unpaid intent; an intent that already succeeded is returned as it is
        (the caller refunds it instead)."""

    async def refund(
        self, *, intent_id: str, amount: int, reason: str | None, idempotency_key: str
    ) -> ProviderRefund: ...

    async def list_refunds(self, intent_id: str) -> list[ProviderRefund]:
        """Every refund of the intent's payment, as the provider knows them."""

    async def probe(self) -> None:
        """A cheap authenticated call (health); raises ProviderError when it fails."""


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of a provider's events, newest first (as Stripe lists them)."""

    events: list[dict[str, Any]]
    has_more: bool


class EventFeed(Protocol):
    """A provider that lists the events it sent (Stripe's `GET /v1/events`)."""

    @property
    def name(self) -> str: ...

    async def list_events(
        self, *, types: Sequence[str], created_gte: int, starting_after: str | None
    ) -> EventPage:
        """Events of `types` created at or after `created_gte` (Unix seconds), newest first,
        the page after the event `starting_after`; ProviderError when it fails."""


@dataclass(frozen=True, slots=True)
class PaymentProviders:
    """The providers this process can reach, by name, and the one new orders use.

    An order's payment calls go to the provider recorded on it, so changing
    `PAYMENT_PROVIDER` never sends an old order's refund to another provider."""

    configured: PaymentProvider
    by_name: dict[str, PaymentProvider]

    @classmethod
    def single(cls, provider: PaymentProvider) -> PaymentProviders:
        return cls(provider, {provider.name: provider})

    def get(self, name: str) -> PaymentProvider | None:
        return self.by_name.get(name)
