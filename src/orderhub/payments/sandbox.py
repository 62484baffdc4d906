"""The sandbox provider: in-process and Stripe-shaped, for zero set-up and tests."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

from orderhub.kit.clock import Clock
from orderhub.payments.provider import (
    IntentNotFound,
    IntentStatus,
    PaymentIntent,
    ProviderError,
    ProviderRefund,
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
            raise IntentNotFound(intent_id) from None

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        async with self._lock:
            intent = await self.retrieve_intent(intent_id)
            if intent.status in FINAL:
                return intent
            cancelled = replace(intent, status=IntentStatus.CANCELED)
            self._intents[intent_id] = cancelled
            return cancelled

    async def mark_succeeded(self, intent_id: str) -> PaymentIntent:
        """What a successful card payment does to an intent (used by confirm)."""
        async with self._lock:
            intent = await self.retrieve_intent(intent_id)
            if intent.status == IntentStatus.CANCELED:
                raise ProviderError("This PaymentIntent has been canceled")
            succeeded = replace(intent, status=IntentStatus.SUCCEEDED)
            self._intents[intent_id] = succeeded
            return succeeded

    async def refund(
        self, *, intent_id: str, amount: int, reason: str | None, idempotency_key: str
    ) -> ProviderRefund:
        async with self._lock:
            if idempotency_key in self._refunds:
                return self._refunds[idempotency_key]
            intent = await self.retrieve_intent(intent_id)
            if intent.status != IntentStatus.SUCCEEDED:
                raise ProviderError("This PaymentIntent has not succeeded")
            refunded = self._refunded.get(intent_id, 0)
            if refunded + amount > intent.amount:
                raise ProviderError("Refund amount exceeds the charge")
            refund = ProviderRefund(
                id=_stripe_like_id("re"),
                amount=amount,
                status="succeeded",
                created=self._now(),
                reason=reason,
            )
            self._refunds[idempotency_key] = refund
            self._refunded[intent_id] = refunded + amount
            return refund
