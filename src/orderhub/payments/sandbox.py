"""The sandbox provider: in-process and Stripe-shaped, for zero set-up and tests.

It behaves as Stripe's test mode does for the operations orderhub uses: the same ids
(`pi_`, `re_`, `ch_`), statuses, idempotency keys and errors, and the same test payment
methods (`pm_card_visa` succeeds, `pm_card_chargeDeclined` is declined,
`pm_card_authenticationRequired` needs 3-D Secure). State lives in this process only.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

from orderhub.kit.clock import Clock
from orderhub.payments.provider import (
    PM_DECLINED,
    PM_NEEDS_AUTHENTICATION,
    PM_SUCCEEDS,
    REFUND_REASONS,
    CardDeclined,
    IntentNotFound,
    IntentStatus,
    PaymentIntent,
    ProviderRefund,
    ProviderRejected,
)

FINAL = frozenset({IntentStatus.SUCCEEDED, IntentStatus.CANCELED})


def _stripe_like_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class SandboxPaymentProvider:
    name = "sandbox"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._intents: dict[str, PaymentIntent] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._refunds: dict[str, ProviderRefund] = {}
        self._refunded: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    async def create_intent(
        self, *, amount: int, currency: str, order_id: str, idempotency_key: str
    ) -> PaymentIntent:
        async with self._lock:
            known = self._by_idempotency_key.get(idempotency_key)
            if known is not None:
                return self._intents[known]
            intent_id = _stripe_like_id("pi")
            intent = PaymentIntent(
                id=intent_id,
                client_secret=f"{intent_id}_secret_{secrets.token_hex(12)}",
                amount=amount,
                currency=currency,
                status=IntentStatus.REQUIRES_PAYMENT_METHOD,
                created=self._now(),
                metadata={"orderId": order_id},
            )
            self._intents[intent_id] = intent
            self._by_idempotency_key[idempotency_key] = intent_id
            return intent

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        try:
            return self._intents[intent_id]
        except KeyError:
            raise IntentNotFound(f"No such payment_intent: '{intent_id}'") from None

    async def confirm_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        async with self._lock:
            intent = await self.retrieve_intent(intent_id)
            if intent.status in FINAL:
                raise ProviderRejected(
                    f"This PaymentIntent's status is {intent.status}; it cannot be confirmed",
                    code="payment_intent_unexpected_state",
                )
            if payment_method == PM_SUCCEEDS:
                updated = replace(
                    intent,
                    status=IntentStatus.SUCCEEDED,
                    latest_charge=_stripe_like_id("ch"),
                    next_action=None,
                    last_payment_error=None,
                )
            elif payment_method == PM_NEEDS_AUTHENTICATION:
                updated = replace(
                    intent,
                    status=IntentStatus.REQUIRES_ACTION,
                    next_action={
                        "type": "use_stripe_sdk",
                        "use_stripe_sdk": {"type": "three_d_secure_redirect"},
                    },
                )
            elif payment_method == PM_DECLINED:
                declined = replace(
                    intent,
                    status=IntentStatus.REQUIRES_PAYMENT_METHOD,
                    last_payment_error="Your card was declined.",
                )
                self._intents[intent_id] = declined
                raise CardDeclined("Your card was declined.", declined, "generic_decline")
            else:
                raise ProviderRejected(
                    f"No such PaymentMethod: '{payment_method}'", code="resource_missing"
                )
            self._intents[intent_id] = updated
            return updated

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        async with self._lock:
            intent = await self.retrieve_intent(intent_id)
            if intent.status in FINAL:
                return intent
            cancelled = replace(intent, status=IntentStatus.CANCELED)
            self._intents[intent_id] = cancelled
            return cancelled

    async def mark_succeeded(self, intent_id: str) -> PaymentIntent:
        """What a customer paying in the browser does to an intent (for tests and demos)."""
        return await self.confirm_intent(intent_id, PM_SUCCEEDS)

    async def refund(
        self, *, intent_id: str, amount: int, reason: str | None, idempotency_key: str
    ) -> ProviderRefund:
        async with self._lock:
            if idempotency_key in self._refunds:
                return self._refunds[idempotency_key]
            if reason is not None and reason not in REFUND_REASONS:
                raise ProviderRejected(f"Invalid reason: {reason}", code="parameter_invalid")
            intent = await self.retrieve_intent(intent_id)
            if intent.status != IntentStatus.SUCCEEDED:
                raise ProviderRejected(
                    "This PaymentIntent does not have a successful charge to refund.",
                    code="charge_not_refundable",
                )
            refunded = self._refunded.get(intent_id, 0)
            if amount <= 0 or refunded + amount > intent.amount:
                raise ProviderRejected(
                    "Refund amount is greater than the amount left to refund",
                    code="amount_too_large",
                )
            refund = ProviderRefund(
                id=_stripe_like_id("re"),
                amount=amount,
                status="succeeded",
                created=self._now(),
                currency=intent.currency,
                payment_intent=intent_id,
                reason=reason,
                local_id=idempotency_key,
            )
            self._refunds[idempotency_key] = refund
            self._refunded[intent_id] = refunded + amount
            return refund

    async def list_refunds(self, intent_id: str) -> list[ProviderRefund]:
        return [r for r in self._refunds.values() if r.payment_intent == intent_id]

    async def probe(self) -> None:
        """In process: always answers."""
