"""The sandbox provider: Stripe-shaped, kept in the store, for zero set-up and tests.

It behaves as Stripe's test mode does for the operations orderhub uses: the same ids
(`pi_`, `re_`, `ch_`), client secrets (`pi_..._secret_...`), statuses, idempotency keys
and errors, and the same test payment methods and card numbers (`TEST_CARDS`). Its
intents and refunds live in the store (`store.sandbox`), so they survive a restart and
every process on the store sees the same ones; each change is a conditional write on the
intent's version, tried again when another process changed it first.

Besides the provider protocol it offers what the sandbox's client side needs (the
checkout pages and the Stripe.js-like confirm, `orderhub.sandbox`): finding an intent by
its client secret, confirming with a card number, answering a 3-D Secure challenge, and
the intent as Stripe's JSON.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from orderhub.kit.clock import Clock
from orderhub.payments.provider import (
    REFUND_REASONS,
    CardDeclined,
    IntentNotFound,
    IntentStatus,
    PaymentIntent,
    ProviderRefund,
    ProviderRejected,
)
from orderhub.store.protocol import (
    AlreadyExists,
    ConcurrencyConflict,
    SandboxIntent,
    SandboxRefund,
    SandboxRepository,
    StoreError,
)

FINAL = frozenset({IntentStatus.SUCCEEDED.value, IntentStatus.CANCELED.value})
# How often a change is tried again when another process changed the intent first.
ATTEMPTS = 20


class CardBehaviour(StrEnum):
    SUCCEEDS = "succeeds"
    DECLINED = "declined"
    AUTHENTICATE = "authenticate"  # 3-D Secure


@dataclass(frozen=True, slots=True)
class SandboxCard:
    payment_method: str
    number: str
    brand: str
    behaviour: CardBehaviour
    decline_code: str | None = None
    message: str | None = None


# Stripe's test cards and the PaymentMethod ids of its test mode, as they behave there.
TEST_CARDS = (
    SandboxCard("pm_card_visa", "4242424242424242", "visa", CardBehaviour.SUCCEEDS),
    SandboxCard("pm_card_mastercard", "5555555555554444", "mastercard", CardBehaviour.SUCCEEDS),
    SandboxCard("pm_card_amex", "378282246310005", "amex", CardBehaviour.SUCCEEDS),
    SandboxCard(
        "pm_card_chargeDeclined",
        "4000000000000002",
        "visa",
        CardBehaviour.DECLINED,
        "generic_decline",
        "Your card was declined.",
    ),
    SandboxCard(
        "pm_card_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        "visa",
        CardBehaviour.DECLINED,
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    SandboxCard(
        "pm_card_authenticationRequired",
        "4000002500003155",
        "visa",
        CardBehaviour.AUTHENTICATE,
    ),
)

AUTHENTICATION_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide "
    "payment_method_data or a new PaymentMethod to attempt to fulfill this "
    "PaymentIntent again."
)


def card_for(value: str) -> SandboxCard | None:
    """The test card named by a PaymentMethod id or a card number (spaces and dashes
    allowed); None for anything else."""
    cleaned = value.strip()
    digits = cleaned.replace(" ", "").replace("-", "")
    for card in TEST_CARDS:
        if cleaned == card.payment_method or digits == card.number:
            return card
    return None


def intent_id_of(client_secret: str) -> str | None:
    """`pi_X_secret_Y` -> `pi_X` (None when it is not shaped like a client secret)."""
    intent_id, separator, rest = client_secret.partition("_secret_")
    if not separator or not rest or not intent_id.startswith("pi_"):
        return None
    return intent_id


def _stripe_like_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def to_payment_intent(intent: SandboxIntent) -> PaymentIntent:
    return PaymentIntent(
        id=intent.id,
        client_secret=intent.client_secret,
        amount=intent.amount,
        currency=intent.currency,
        status=IntentStatus(intent.status),
        created=intent.created,
        metadata=dict(intent.metadata),
        latest_charge=intent.latest_charge,
        next_action=intent.next_action,
        last_payment_error=(intent.last_error or {}).get("message"),
    )


def stripe_object(intent: SandboxIntent) -> dict[str, Any]:
    """The intent as Stripe's API shows it to a client holding its client secret
    (Stripe.js): no metadata."""
    return {
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_received": intent.amount if intent.status == IntentStatus.SUCCEEDED else 0,
        "capture_method": "automatic",
        "client_secret": intent.client_secret,
        "confirmation_method": "automatic",
        "created": intent.created,
        "currency": intent.currency,
        "description": None,
        "last_payment_error": intent.last_error,
        "latest_charge": intent.latest_charge,
        "livemode": False,
        "next_action": intent.next_action,
        "payment_method": intent.payment_method,
        "payment_method_types": ["card"],
        "status": intent.status,
    }


# A change computes the intent's next state, and optionally an error raised once it is
# written (a decline is written, then reported).
Change = Callable[[SandboxIntent], tuple[SandboxIntent, Exception | None]]


class SandboxPaymentProvider:
    name = "sandbox"

    def __init__(self, repository: SandboxRepository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    async def _get(self, intent_id: str) -> SandboxIntent:
        intent = await self._repository.get_intent(intent_id)
        if intent is None:
            raise IntentNotFound(f"No such payment_intent: '{intent_id}'")
        return intent

    async def _change(self, intent_id: str, change: Change) -> SandboxIntent:
        for _attempt in range(ATTEMPTS):
            current = await self._get(intent_id)
            updated, error = change(current)
            if updated != current:
                try:
                    await self._repository.put_intent(
                        replace(updated, version=current.version + 1), current.version
                    )
                except ConcurrencyConflict:
                    continue
                updated = replace(updated, version=current.version + 1)
            if error is not None:
                if isinstance(error, CardDeclined):
                    error.intent = to_payment_intent(updated)
                raise error
            return updated
        raise StoreError("the sandbox intent kept changing")

    # -- the provider protocol ------------------------------------------------------

    async def create_intent(
        self, *, amount: int, currency: str, order_id: str, idempotency_key: str
    ) -> PaymentIntent:
        for _attempt in range(ATTEMPTS):
            known = await self._repository.intent_for_key(idempotency_key)
            if known is not None:
                return to_payment_intent(known)
            intent_id = _stripe_like_id("pi")
            intent = SandboxIntent(
                id=intent_id,
                client_secret=f"{intent_id}_secret_{secrets.token_hex(12)}",
                idempotency_key=idempotency_key,
                amount=amount,
                currency=currency,
                status=IntentStatus.REQUIRES_PAYMENT_METHOD.value,
                created=self._now(),
                metadata={"orderId": order_id},
            )
            try:
                await self._repository.put_intent(intent, None)
            except AlreadyExists:
                continue  # another request with the same key made it first: read theirs
            return to_payment_intent(intent)
        raise StoreError("the sandbox intent could not be created")

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        return to_payment_intent(await self._get(intent_id))

    async def confirm_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        """Confirm with a test PaymentMethod id (`pm_card_visa`, ...)."""
        card = next((c for c in TEST_CARDS if c.payment_method == payment_method), None)
        return to_payment_intent(await self._confirm(intent_id, card, payment_method))

    async def _confirm(
        self, intent_id: str, card: SandboxCard | None, payment_method: str
    ) -> SandboxIntent:
        def change(intent: SandboxIntent) -> tuple[SandboxIntent, Exception | None]:
            if intent.status in FINAL:
                return intent, ProviderRejected(
                    f"This PaymentIntent's status is {intent.status}; it cannot be confirmed",
                    code="payment_intent_unexpected_state",
                )
            if card is None:
                return intent, ProviderRejected(
                    f"No such PaymentMethod: '{payment_method}'", code="resource_missing"
                )
            if card.behaviour == CardBehaviour.SUCCEEDS:
                return self._succeeded(intent, card.payment_method), None
            if card.behaviour == CardBehaviour.AUTHENTICATE:
                return replace(
                    intent,
                    status=IntentStatus.REQUIRES_ACTION.value,
                    payment_method=card.payment_method,
                    next_action={
                        "type": "use_stripe_sdk",
                        "use_stripe_sdk": {"type": "three_d_secure_redirect"},
                    },
                    last_error=None,
                ), None
            message = card.message or "Your card was declined."
            declined = _needs_payment_method(
                intent,
                {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": card.decline_code or "generic_decline",
                    "message": message,
                    "payment_method": card.payment_method,
                },
            )
            return declined, CardDeclined(message, None, card.decline_code)

        return await self._change(intent_id, change)

    def _succeeded(self, intent: SandboxIntent, payment_method: str | None) -> SandboxIntent:
        return replace(
            intent,
            status=IntentStatus.SUCCEEDED.value,
            latest_charge=_stripe_like_id("ch"),
            payment_method=payment_method,
            next_action=None,
            last_error=None,
        )

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        def change(intent: SandboxIntent) -> tuple[SandboxIntent, Exception | None]:
            if intent.status in FINAL:
                return intent, None
            return replace(intent, status=IntentStatus.CANCELED.value, next_action=None), None

        return to_payment_intent(await self._change(intent_id, change))

    async def mark_succeeded(self, intent_id: str) -> PaymentIntent:
        """What a customer paying in the browser does to an intent (for tests and demos)."""
        return await self.confirm_intent(intent_id, "pm_card_visa")

    async def refund(
        self, *, intent_id: str, amount: int, reason: str | None, idempotency_key: str
    ) -> ProviderRefund:
        for _attempt in range(ATTEMPTS):
            known = await self._repository.get_refund(intent_id, idempotency_key)
            if known is not None:
                return _provider_refund(known)
            if reason is not None and reason not in REFUND_REASONS:
                raise ProviderRejected(f"Invalid reason: {reason}", code="parameter_invalid")
            intent = await self._get(intent_id)
            if intent.status != IntentStatus.SUCCEEDED:
                raise ProviderRejected(
                    "This PaymentIntent does not have a successful charge to refund.",
                    code="charge_not_refundable",
                )
            if amount <= 0 or intent.refunded + amount > intent.amount:
                raise ProviderRejected(
                    "Refund amount is greater than the amount left to refund",
                    code="amount_too_large",
                )
            refund = SandboxRefund(
                id=_stripe_like_id("re"),
                intent_id=intent_id,
                idempotency_key=idempotency_key,
                amount=amount,
                currency=intent.currency,
                status="succeeded",
                reason=reason,
                created=self._now(),
            )
            updated = replace(intent, refunded=intent.refunded + amount, version=intent.version + 1)
            try:
                await self._repository.add_refund(refund, updated, intent.version)
            except (AlreadyExists, ConcurrencyConflict):
                continue  # read again: the same refund made meanwhile, or a newer intent
            return _provider_refund(refund)
        raise StoreError("the sandbox intent kept changing")

    async def list_refunds(self, intent_id: str) -> list[ProviderRefund]:
        return [_provider_refund(r) for r in await self._repository.list_refunds(intent_id)]

    async def probe(self) -> None:
        """Lives in the store, which health checks on its own: always answers."""

    # -- the client side (checkout pages, the Stripe.js-like confirm) -----------------

    async def intent_for_client_secret(self, client_secret: str) -> SandboxIntent | None:
        """The intent whose client secret this is (compared in constant time); None for
        any other string."""
        intent_id = intent_id_of(client_secret)
        if intent_id is None:
            return None
        intent = await self._repository.get_intent(intent_id)
        if intent is None or not hmac.compare_digest(
            intent.client_secret.encode(), client_secret.encode()
        ):
            return None
        return intent

    async def intent_for_id(self, intent_id: str) -> SandboxIntent:
        """The stored intent (IntentNotFound when there is none)."""
        return await self._get(intent_id)

    async def confirm_with(self, intent_id: str, payment_method: str) -> SandboxIntent:
        """Confirm as Stripe.js does, with a test PaymentMethod id or a test card number;
        CardDeclined / ProviderRejected as `confirm_intent`."""
        card = card_for(payment_method)
        return await self._confirm(intent_id, card, payment_method.strip())

    async def authenticate(self, intent_id: str, *, complete: bool) -> SandboxIntent:
        """The customer's answer to the 3-D Secure challenge: completed, the payment
        succeeds; failed, the intent needs a new payment method again."""

        def change(intent: SandboxIntent) -> tuple[SandboxIntent, Exception | None]:
            if intent.status != IntentStatus.REQUIRES_ACTION:
                return intent, ProviderRejected(
                    f"This PaymentIntent's status is {intent.status}; nothing to authenticate",
                    code="payment_intent_unexpected_state",
                )
            if complete:
                return self._succeeded(intent, intent.payment_method), None
            return _needs_payment_method(
                intent,
                {
                    "type": "invalid_request_error",
                    "code": "payment_intent_authentication_failure",
                    "message": AUTHENTICATION_FAILED,
                    "payment_method": intent.payment_method or "",
                },
            ), None

        return await self._change(intent_id, change)


def _needs_payment_method(intent: SandboxIntent, last_error: dict[str, str]) -> SandboxIntent:
    """`intent` back to `requires_payment_method`, telling why in `last_error`."""
    return replace(
        intent,
        status=IntentStatus.REQUIRES_PAYMENT_METHOD.value,
        payment_method=None,
        next_action=None,
        last_error=last_error,
    )


def _provider_refund(refund: SandboxRefund) -> ProviderRefund:
    return ProviderRefund(
        id=refund.id,
        amount=refund.amount,
        status=refund.status,
        created=refund.created,
        currency=refund.currency,
        payment_intent=refund.intent_id,
        reason=refund.reason,
        local_id=refund.idempotency_key,
    )
