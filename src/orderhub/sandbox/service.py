"""The sandbox's client side, as Stripe.js and Stripe's hosted pages are for Stripe: what
the checkout pages and the JSON confirm do. The client secret is the credential.

Every change the customer makes at the sandbox (a payment, a decline, a 3-D Secure
answer) is then applied to its order as Stripe's webhook would apply it, so the order
reads the result at once; the shop's two-field `POST /api/payments/confirm` reads the
same status from the provider and answers as the seed says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import structlog

from orderhub.kit.errors import AppError
from orderhub.kit.money import format_major
from orderhub.orders.domain import EventSource, Order
from orderhub.payments.outcomes import OutcomeRejected, intent_outcome
from orderhub.payments.provider import CardDeclined, IntentStatus, ProviderError, ProviderRejected
from orderhub.payments.sandbox import SandboxPaymentProvider, to_payment_intent
from orderhub.payments.service import PaymentService
from orderhub.payments.units import from_provider
from orderhub.store.protocol import SandboxIntent, Store, StoreError

log = structlog.get_logger(__name__)


class Stage(StrEnum):
    """What the customer sees for an intent."""

    PAY = "pay"  # the card form
    AUTHENTICATE = "authenticate"  # the 3-D Secure challenge
    PAID = "paid"
    DECLINED = "declined"
    AUTHENTICATION_FAILED = "authentication_failed"
    CANCELED = "canceled"
    UNKNOWN_CARD = "unknown_card"


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    quantity: int
    price: str
    total: str


@dataclass(frozen=True, slots=True)
class Checkout:
    """An intent with its order, ready to show (amounts formatted for the currency)."""

    intent: SandboxIntent
    stage: Stage
    shop_name: str
    currency: str  # upper case, as shown
    total: str
    lines: tuple[Line, ...]
    shipping: str | None
    tax: str | None
    discount: str | None
    customer_name: str | None
    error: str | None  # why the last attempt did not pay

    @property
    def client_secret(self) -> str:
        return self.intent.client_secret


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The intent after a JSON confirm, or Stripe's error when nothing was done."""

    intent: SandboxIntent | None
    error_code: str | None = None
    error_message: str | None = None


def stage_of(intent: SandboxIntent) -> Stage:
    if intent.status == IntentStatus.SUCCEEDED:
        return Stage.PAID
    if intent.status == IntentStatus.CANCELED:
        return Stage.CANCELED
    if intent.status == IntentStatus.REQUIRES_ACTION:
        return Stage.AUTHENTICATE
    return Stage.PAY


class SandboxCheckout:
    def __init__(
        self,
        provider: SandboxPaymentProvider,
        store: Store,
        payments: PaymentService,
        shop_name: str,
    ) -> None:
        self._provider = provider
        self._store = store
        self._payments = payments
        self._shop_name = shop_name

    async def find(self, client_secret: str) -> SandboxIntent | None:
        return await self._provider.intent_for_client_secret(client_secret)

    async def checkout(self, client_secret: str, stage: Stage | None = None) -> Checkout | None:
        """The checkout for this client secret (None: no such intent), at the intent's
        own stage unless `stage` says what just happened."""
        intent = await self.find(client_secret)
        if intent is None:
            return None
        return await self._view(intent, stage)

    async def _view(self, intent: SandboxIntent, stage: Stage | None) -> Checkout:
        async with self._store.unit_of_work() as uow:
            order = await uow.orders.get_by_payment_intent(intent.id)
        return _checkout(intent, stage or stage_of(intent), self._shop_name, order)

    async def pay(self, client_secret: str, card: str) -> Checkout | None:
        """The card form: confirm with a test card number or PaymentMethod id."""
        intent = await self.find(client_secret)
        if intent is None:
            return None
        if stage_of(intent) not in (Stage.PAY, Stage.AUTHENTICATE):
            return await self._view(intent, None)
        try:
            paid = await self._provider.confirm_with(intent.id, card)
        except CardDeclined:
            declined = await self._applied(intent.id, failed=True)
            return await self._view(declined, Stage.DECLINED)
        except ProviderRejected as rejected:
            if rejected.code == "resource_missing":
                return await self._view(intent, Stage.UNKNOWN_CARD)
            return await self._view(await self._applied(intent.id), None)
        await self._apply(paid, failed=False)
        return await self._view(paid, None)

    async def authenticate(self, client_secret: str, *, complete: bool) -> Checkout | None:
        """The 3-D Secure challenge's answer."""
        intent = await self.find(client_secret)
        if intent is None:
            return None
        try:
            answered = await self._provider.authenticate(intent.id, complete=complete)
        except ProviderRejected:
            return await self._view(await self._applied(intent.id), None)
        await self._apply(answered, failed=not complete)
        return await self._view(answered, None if complete else Stage.AUTHENTICATION_FAILED)

    async def confirm(self, intent_id: str, client_secret: str, payment_method: str) -> Confirmed:
        """The JSON confirm (what Stripe.js sends). `intent` None: no such intent for this
        secret; an error code: refused, nothing changed."""
        intent = await self.find(client_secret)
        if intent is None or intent.id != intent_id:
            return Confirmed(None)
        try:
            confirmed = await self._provider.confirm_with(intent.id, payment_method)
        except CardDeclined:
            return Confirmed(await self._applied(intent.id, failed=True))
        except ProviderRejected as rejected:
            return Confirmed(intent, rejected.code or "parameter_invalid", str(rejected))
        await self._apply(confirmed, failed=False)
        return Confirmed(confirmed)

    async def _applied(self, intent_id: str, *, failed: bool = False) -> SandboxIntent:
        """The intent as stored now, its outcome applied to its order."""
        intent = await self._provider.intent_for_id(intent_id)
        await self._apply(intent, failed=failed)
        return intent

    async def _apply(self, intent: SandboxIntent, *, failed: bool) -> None:
        """Apply what happened to the intent's order, as Stripe's webhook would. The
        payment stands whatever happens here: the shop's confirm applies it again."""
        outcome = intent_outcome(to_payment_intent(intent), failed=failed)
        try:
            await self._payments.apply(outcome, EventSource.PROVIDER)
        except OutcomeRejected:
            pass  # an intent no order holds: nothing to apply
        except (AppError, ProviderError, StoreError) as exc:
            log.warning("sandbox_outcome_not_applied", intent=intent.id, error=str(exc))


def _money(minor: int, currency: str) -> str:
    return format_major(minor, currency)


def _checkout(intent: SandboxIntent, stage: Stage, shop_name: str, order: Order | None) -> Checkout:
    error = (intent.last_error or {}).get("message")
    if order is None:
        return Checkout(
            intent=intent,
            stage=stage,
            shop_name=shop_name,
            currency=intent.currency.upper(),
            # the intent counts in the provider's units; the page shows the currency's own
            total=_money(from_provider(intent.amount, intent.currency), intent.currency),
            lines=(),
            shipping=None,
            tax=None,
            discount=None,
            customer_name=None,
            error=error,
        )
    currency = order.currency
    amounts = order.amounts

    def optional(minor: int) -> str | None:
        return _money(minor, currency) if minor else None

    return Checkout(
        intent=intent,
        stage=stage,
        shop_name=shop_name,
        currency=currency.upper(),
        total=_money(order.total_minor, currency),
        lines=tuple(
            Line(
                item.name,
                item.quantity,
                _money(item.price_minor, currency),
                _money(item.total_minor, currency),
            )
            for item in amounts.items
        ),
        shipping=optional(amounts.shipping_minor),
        tax=optional(amounts.tax_minor),
        discount=optional(amounts.discount_minor),
        customer_name=order.customer_name,
        error=error,
    )
