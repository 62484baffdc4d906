"""What a provider reports about a payment or a refund, as orderhub applies it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from orderhub.orders.domain import RefundStatus
from orderhub.payments.provider import IntentStatus, PaymentIntent, ProviderRefund


class PaymentResult(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    IN_PROGRESS = "in_progress"  # processing, requires_action, requires_confirmation


@dataclass(frozen=True, slots=True)
class IntentOutcome:
    """What the provider reports about a payment intent."""

    intent_id: str
    result: PaymentResult
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """What the provider reports about a refund of a payment intent."""

    intent_id: str
    provider_refund_id: str | None
    local_id: str | None
    amount: int
    currency: str
    status: RefundStatus
    reason: str | None
    created: datetime


PaymentOutcome = IntentOutcome | RefundOutcome


class OutcomeRejected(Exception):
    """An outcome that does not fit its order (unknown intent, other amount or currency):
    recorded as an error and not applied."""


def intent_outcome(intent: PaymentIntent, *, failed: bool = False) -> IntentOutcome:
    if failed:
        result = PaymentResult.FAILED
    elif intent.status == IntentStatus.SUCCEEDED:
        result = PaymentResult.SUCCEEDED
    elif intent.status == IntentStatus.CANCELED:
        result = PaymentResult.CANCELED
    else:
        result = PaymentResult.IN_PROGRESS
    return IntentOutcome(intent.id, result, intent.amount, intent.currency)


def refund_status(value: str) -> RefundStatus:
    known = {status.value: status for status in RefundStatus}
    # Stripe's `requires_action` refunds are still under way: pending.
    return known.get(value, RefundStatus.PENDING)


def refund_outcome(refund: ProviderRefund, intent_id: str, local_id: str | None) -> RefundOutcome:
    return RefundOutcome(
        intent_id=refund.payment_intent or intent_id,
        provider_refund_id=refund.id,
        local_id=local_id or refund.local_id,
        amount=refund.amount,
        currency=refund.currency,
        status=refund_status(refund.status),
        reason=refund.reason,
        created=datetime.fromtimestamp(refund.created, tz=UTC),
    )
