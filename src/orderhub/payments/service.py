"""Payment use cases, and the one function that applies every payment outcome.

Outcomes come from confirm, refund, cancel, the sandbox and verified webhooks alike; all
of them go through `PaymentService.apply`, which is idempotent by `pi_`/`re_` id, follows
SPEC §7's rules, and commits before the caller answers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

import structlog

from orderhub.kit.clock import Clock
from orderhub.kit.errors import (
    AppError,
    BadRequest,
    Conflict,
    NotFound,
    PaymentDeclined,
    UpstreamError,
    ValidationFailed,
)
from orderhub.kit.ids import parse_uuid
from orderhub.kit.money import AmountError, to_minor
from orderhub.monitoring.error_log import Component, ErrorLog
from orderhub.orders.domain import (
    MAX_REQUESTED_REFUNDS,
    EventSource,
    Order,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundBeyondPayment,
    RefundStatus,
    TooManyRefunds,
    auto_refund_id,
)
from orderhub.payments.outcomes import (
    IntentOutcome,
    OutcomeRejected,
    PaymentOutcome,
    PaymentResult,
    RefundOutcome,
    intent_outcome,
    refund_outcome,
)
from orderhub.payments.provider import (
    CardDeclined,
    IntentNotFound,
    IntentStatus,
    PaymentIntent,
    PaymentProvider,
    PaymentProviders,
    ProviderError,
    ProviderRejected,
)
from orderhub.payments.units import UnitsError, from_provider, to_provider
from orderhub.store.protocol import Store, UnitOfWork
from orderhub.store.unit_of_work import update_order

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    status: str
    next_action: dict[str, object] | None
    order: Order


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund: Refund
    order: Order


@dataclass(frozen=True, slots=True)
class RefundSent:
    """A refund after it was sent: `refused` holds the provider's reason when it said no."""

    order: Order
    refused: str | None = None


class ProviderUnavailable(Conflict):
    """The order's provider is not configured in this process (PAYMENT_PROVIDER changed)."""

    code = "payment_provider_unavailable"


class PaymentService:
    def __init__(
        self,
        store: Store,
        payments: PaymentProvider | PaymentProviders,
        clock: Clock,
        error_log: ErrorLog,
    ) -> None:
        self._store = store
        self._providers = (
            payments
            if isinstance(payments, PaymentProviders)
            else PaymentProviders.single(payments)
        )
        self._clock = clock
        self._error_log = error_log

    # -- the order's own provider ---------------------------------------------------

    async def provider_for(self, order: Order) -> PaymentProvider:
        """The provider the order was created with; 409 (recorded) if it is not configured
        here: an order's payment never goes to another provider."""
        provider = self._providers.get(order.payment_provider)
        if provider is None:
            await self._error_log.record(
                Component.PAYMENTS,
                "The order's payment provider is not configured",
                error=f"provider {order.payment_provider!r} is not configured",
                order_id=order.id,
            )
            raise ProviderUnavailable(
                f"The order's payment provider ({order.payment_provider}) is not configured",
            )
        return provider

    # -- the one way to apply an outcome --------------------------------------------

    async def apply(self, outcome: PaymentOutcome, source: EventSource) -> Order:
        """Apply a provider's outcome to its order, idempotently. Raises OutcomeRejected
        when it does not fit the order (then nothing changes)."""
        return (await self.apply_changed(outcome, source))[0]

    async def apply_changed(
        self, outcome: PaymentOutcome, source: EventSource
    ) -> tuple[Order, bool]:
        """`apply`, also saying whether the order changed (a known outcome does not)."""
        async with self._store.unit_of_work() as uow:
            order = await uow.orders.get_by_payment_intent(outcome.intent_id)
        if order is None:
            raise OutcomeRejected(f"no order has payment intent {outcome.intent_id}")
        if outcome.currency.lower() != order.currency:
            raise OutcomeRejected(
                f"{outcome.intent_id}: currency {outcome.currency} differs from the order's "
                f"{order.currency}"
            )
        # Outcomes carry the provider's units; the order holds ISO 4217 minor units.
        try:
            amount = from_provider(outcome.amount, order.currency)
        except UnitsError as exc:
            raise OutcomeRejected(f"{outcome.intent_id}: {exc}") from None
        if isinstance(outcome, IntentOutcome) and amount != order.total_minor:
            raise OutcomeRejected(
                f"{outcome.intent_id}: amount {outcome.amount} differs from the order's "
                f"{to_provider(order.total_minor, order.currency)}"
            )
        outcome = replace(outcome, amount=amount)

        async def change(current: Order, _uow: UnitOfWork, now: datetime) -> None:
            if isinstance(outcome, IntentOutcome):
                self._apply_intent(current, outcome, now, source)
            else:
                self._apply_refund(current, outcome, now, source)

        updated = await update_order(self._store, self._clock, order.id, change)
        automatic = updated.find_refund(auto_refund_id(outcome.intent_id))
        if isinstance(outcome, IntentOutcome) and automatic is not None:
            # Sent here, by whoever applied the payment; if the provider cannot be reached
            # the caller fails (a webhook answers 5xx, so Stripe retries and we resend).
            updated = await self.submit_refund(updated, automatic.id)
        return updated, updated.version != order.version

    def _apply_intent(
        self, order: Order, outcome: IntentOutcome, now: datetime, source: EventSource
    ) -> None:
        if outcome.result == PaymentResult.SUCCEEDED:
            order.record_payment_succeeded(now, source)
            left = order.refundable_minor
            if order.status == OrderStatus.CANCELLED and left > 0:
                # A payment that succeeds on a cancelled order is refunded automatically;
                # the id is derived from the intent, so the refund is reserved only once.
                order.record_refund(
                    Refund(
                        auto_refund_id(outcome.intent_id), left, None, RefundStatus.REQUESTED, now
                    ),
                    now,
                    EventSource.SYSTEM,
                )
        elif outcome.result == PaymentResult.FAILED:
            order.record_payment_failed(now, source)
        elif outcome.result == PaymentResult.CANCELED:
            order.record_payment_canceled(now, source)
        else:
            order.record_payment_retrying(now)

    def _apply_refund(
        self, order: Order, outcome: RefundOutcome, now: datetime, source: EventSource
    ) -> None:
        if order.paid_at is None:
            # A refund can only follow a payment: apply the payment first (events may
            # arrive out of order).
            order.record_payment_succeeded(now, source)
        refund = Refund(
            id=outcome.local_id or outcome.provider_refund_id or "",
            amount_minor=outcome.amount,
            reason=outcome.reason,
            status=outcome.status,
            created_at=outcome.created,
            provider_id=outcome.provider_refund_id,
        )
        try:
            order.record_refund(refund, now, source, enforce_limit=False)
        except RefundBeyondPayment as exc:
            raise OutcomeRejected(f"{outcome.intent_id}: {exc.message}") from None

    # -- refunds --------------------------------------------------------------------

    async def refund(
        self,
        order_id: str,
        amount: Decimal | None,
        reason: str | None,
        refund_id: uuid.UUID,
        source: EventSource = EventSource.API,
    ) -> RefundResult:
        """Reserve the refund on the order first (the version check keeps concurrent
        refunds within what was paid), then ask the provider with the local refund id
        as its idempotency key, then apply what it answered."""
        parsed = parse_uuid(order_id)
        async with self._store.unit_of_work() as uow:
            current = await uow.orders.get(parsed) if parsed else None
        if current is None:
            raise NotFound("Order not found")
        # the amount is checked before the order's state: a bad amount is always a 400
        requested = None if amount is None else _minor(amount, current)
        await self.provider_for(current)
        local_id = str(refund_id)

        async def reserve(order: Order, _uow: UnitOfWork, now: datetime) -> None:
            if order.find_refund(local_id) is not None:
                return  # a retry of the same request: the reservation stands
            if order.paid_at is None:
                raise Conflict("Order has not been paid", code="order_not_paid")
            if order.refundable_minor <= 0:
                raise Conflict("Order has been fully refunded", code="nothing_to_refund")
            rest = requested is None or requested == order.refundable_minor
            if len(order.refunds) >= MAX_REQUESTED_REFUNDS and not rest:
                raise TooManyRefunds(
                    f"An order holds at most {MAX_REQUESTED_REFUNDS} refunds; refund what is "
                    "left in one (omit amount)"
                )
            amount_minor = order.refundable_minor if requested is None else requested
            if amount_minor > order.refundable_minor:
                raise Conflict(
                    "Refund amount exceeds the amount left to refund", code="refund_too_large"
                )
            order.record_refund(
                Refund(local_id, amount_minor, reason, RefundStatus.REQUESTED, now), now, source
            )

        order = await update_order(self._store, self._clock, current.id, reserve)
        sent = await self.send_refund(order, local_id, source)
        order = sent.order
        final = order.find_refund(local_id)
        assert final is not None
        if final.status in (RefundStatus.FAILED, RefundStatus.CANCELED):
            raise Conflict(
                f"The payment provider refused the refund: {sent.refused or final.status}",
                code="refund_failed",
            )
        return RefundResult(final, order)

    async def submit_refund(
        self, order: Order, refund_id: str, source: EventSource = EventSource.SYSTEM
    ) -> Order:
        """Send one saved refund to the provider and apply its answer."""
        return (await self.send_refund(order, refund_id, source)).order

    async def send_refund(
        self, order: Order, refund_id: str, source: EventSource = EventSource.SYSTEM
    ) -> RefundSent:
        """Send one saved refund to the provider (once the provider answered for it there
        is nothing to send). 502 if the provider cannot be reached; the refund stays
        `requested`."""
        refund = order.find_refund(refund_id)
        if refund is None or refund not in order.unsent_refunds:
            return RefundSent(order)
        return await self._submit(order, refund, source)

    async def _submit(self, order: Order, refund: Refund, source: EventSource) -> RefundSent:
        """Send a saved refund to the order's provider and apply the answer. A provider that
        refuses marks the refund failed (its amount is free again); a provider that cannot
        be reached leaves it `requested` (it may have happened) and answers 502."""
        assert order.payment_intent_id is not None
        provider = await self.provider_for(order)
        provider_amount = to_provider(refund.amount_minor, order.currency)
        try:
            answer = await provider.refund(
                intent_id=order.payment_intent_id,
                amount=provider_amount,
                reason=refund.reason,
                idempotency_key=refund.id,
            )
        except ProviderRejected as exc:
            await self._error_log.record(
                Component.PAYMENTS,
                "Refund refused by the payment provider",
                error=str(exc),
                order_id=order.id,
            )
            failed = RefundOutcome(
                order.payment_intent_id,
                None,
                refund.id,
                provider_amount,
                order.currency,
                RefundStatus.FAILED,
                refund.reason,
                refund.created_at,
            )
            return RefundSent(await self.apply(failed, source), str(exc) or "refused")
        except ProviderError as exc:
            raise await self._provider_failed(
                "Refund could not reach the payment provider",
                "the refund could not be completed",
                exc,
                order.id,
            ) from exc
        outcome = refund_outcome(answer, order.payment_intent_id, refund.id)
        return RefundSent(await self.apply(outcome, source))

    async def resend_unsent_refunds(self, quiet_for: timedelta, limit: int = 50) -> int:
        """Send refunds that were reserved but never acknowledged (the provider could not be
        reached and nobody retried). Their id is the provider's idempotency key, so a refund
        that did happen is only read back. Returns how many were acknowledged now."""
        return (await self.resend_refunds(quiet_for, limit))[1]

    async def resend_refunds(self, quiet_for: timedelta, limit: int) -> tuple[int, int]:
        """`resend_unsent_refunds`, counted: (refunds sent, refunds acknowledged)."""
        async with self._store.unit_of_work() as uow:
            orders = await uow.orders.with_unsent_refunds(self._clock.now() - quiet_for, limit)
        sent = acknowledged = 0
        for order in orders:
            for refund in order.unsent_refunds:
                sent += 1
                try:
                    order = await self.submit_refund(order, refund.id)
                except AppError:
                    continue  # still unreachable (or its provider is gone): next pass
                acknowledged += 1
        return sent, acknowledged

    async def _provider_failed(
        self, recorded: str, answered: str, exc: ProviderError, order_id: uuid.UUID
    ) -> UpstreamError:
        """Keep the provider's failure for operators; the caller raises the 502 returned."""
        await self._error_log.record(
            Component.PAYMENTS, recorded, error=str(exc), order_id=order_id
        )
        return UpstreamError(f"Payment provider error: {answered}", code="payment_provider_error")

    # -- cancel (for DELETE /api/orders/:id) ----------------------------------------

    async def settle_for_cancel(self, order: Order) -> None:
        """Before cancelling: cancel an unpaid intent at the provider. If the provider says
        it already succeeded, apply that payment, so the cancellation refunds it."""
        if order.payment_intent_id is None or order.payment_status not in (
            PaymentStatus.PENDING,
            PaymentStatus.FAILED,
        ):
            return
        provider = await self.provider_for(order)
        try:
            intent = await provider.cancel_intent(order.payment_intent_id)
        except IntentNotFound:
            log.warning("cancel_unknown_intent", order_id=str(order.id))
            return
        except ProviderError as exc:
            raise await self._provider_failed(
                "Could not cancel the payment intent", "could not cancel the payment", exc, order.id
            ) from exc
        if intent.status == IntentStatus.SUCCEEDED:
            await self.apply(intent_outcome(intent), EventSource.PROVIDER)

    # -- confirm ----------------------------------------------------------------------

    async def confirm(
        self, order_id: str, intent_id: str, payment_method: str | None
    ) -> ConfirmResult:
        parsed = parse_uuid(order_id)
        async with self._store.unit_of_work() as uow:
            order = await uow.orders.get(parsed) if parsed else None
        if order is None:
            raise NotFound("Order not found")
        if order.payment_intent_id != intent_id:
            raise ValidationFailed.one("paymentIntentId", "does not belong to this order")
        provider = await self.provider_for(order)
        try:
            if payment_method is None:
                intent = await provider.retrieve_intent(intent_id)
            else:
                intent = await provider.confirm_intent(intent_id, payment_method)
        except CardDeclined as declined:
            failed = IntentOutcome(
                intent_id,
                PaymentResult.FAILED,
                to_provider(order.total_minor, order.currency),
                order.currency,
            )
            await self.apply(failed, EventSource.PROVIDER)
            raise PaymentDeclined(str(declined) or "Your card was declined.") from declined
        except ProviderRejected as exc:
            if exc.code == "payment_intent_unexpected_state":
                intent = await self._retrieve(provider, intent_id)
            else:
                raise BadRequest(str(exc), code=exc.code or "payment_rejected") from exc
        except IntentNotFound as exc:
            raise NotFound("Payment intent not found") from exc
        except ProviderError as exc:
            raise await self._provider_failed(
                "Payment confirmation failed", "could not confirm the payment", exc, order.id
            ) from exc
        order = await self._apply_checked(intent_outcome(intent), EventSource.PROVIDER)
        return ConfirmResult(intent.status.value, intent.next_action, order)

    async def _retrieve(self, provider: PaymentProvider, intent_id: str) -> PaymentIntent:
        try:
            return await provider.retrieve_intent(intent_id)
        except IntentNotFound as exc:
            raise NotFound("Payment intent not found") from exc
        except ProviderError as exc:
            raise UpstreamError(
                "Payment provider error: could not read the payment",
                code="payment_provider_error",
            ) from exc

    async def _apply_checked(self, outcome: PaymentOutcome, source: EventSource) -> Order:
        try:
            return await self.apply(outcome, source)
        except OutcomeRejected as exc:
            await self._error_log.record(
                Component.PAYMENTS, "Payment outcome rejected", error=str(exc)
            )
            raise Conflict("The payment does not match the order", code="payment_mismatch") from exc

    async def _provider_of_intent(self, intent_id: str) -> PaymentProvider:
        """The provider of the order holding this intent (the configured one if none does)."""
        async with self._store.unit_of_work() as uow:
            order = await uow.orders.get_by_payment_intent(intent_id)
        if order is None:
            return self._providers.configured
        return await self.provider_for(order)

    async def provider_refunds(self, intent_id: str) -> list[RefundOutcome]:
        """The intent's refunds as the provider knows them (ProviderError if unreachable)."""
        provider = await self._provider_of_intent(intent_id)
        return [refund_outcome(r, intent_id, None) for r in await provider.list_refunds(intent_id)]

    async def get_intent(self, intent_id: str) -> PaymentIntent:
        """The intent from its order's provider; amounts in the provider's units."""
        return await self._retrieve(await self._provider_of_intent(intent_id), intent_id)


def _minor(amount: Decimal, order: Order) -> int:
    try:
        minor = to_minor(amount, order.currency)
    except AmountError as exc:
        raise ValidationFailed.one("amount", str(exc)) from None
    if minor <= 0:
        raise ValidationFailed.one("amount", "must be greater than 0")
    try:
        to_provider(minor, order.currency)
    except UnitsError as exc:
        raise ValidationFailed.one("amount", f"cannot be refunded exactly: {exc}") from None
    return minor
