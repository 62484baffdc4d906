"""Order use cases: validate, call the provider, change the order, commit with its events."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from orderhub.kit.clock import Clock
from orderhub.kit.cursor import CursorCodec
from orderhub.kit.errors import Conflict, FieldProblem, NotFound, UpstreamError, ValidationFailed
from orderhub.kit.ids import parse_uuid
from orderhub.kit.money import AmountError, to_minor
from orderhub.orders.domain import (
    Amounts,
    EventSource,
    LineItem,
    Order,
    OrderChanges,
    OrderDraft,
    OrderEvent,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundStatus,
    check_total,
)
from orderhub.orders.schemas import OrderCreateIn, OrderUpdateIn
from orderhub.payments.provider import (
    IntentNotFound,
    IntentStatus,
    PaymentProvider,
    ProviderError,
)
from orderhub.store.protocol import (
    AlreadyExists,
    ConcurrencyConflict,
    OrderFilter,
    Store,
    UnitOfWork,
)

log = structlog.get_logger(__name__)

MAX_CONFLICT_RETRIES = 20


def draft_from_request(request: OrderCreateIn) -> OrderDraft:
    """Turn a validated request into minor units; every amount problem is a 400."""
    currency = request.currency
    problems: list[FieldProblem] = []

    def minor(field: str, value: object) -> int:
        try:
            return to_minor(value, currency)  # type: ignore[arg-type]
        except AmountError as exc:
            problems.append(FieldProblem(field, str(exc)))
            return 0

    items = tuple(
        LineItem(item.id, item.name, item.quantity, minor(f"items[{n}].price", item.price))
        for n, item in enumerate(request.items)
    )
    amounts = Amounts(
        currency=currency,
        items=items,
        shipping_minor=minor("shippingAmount", request.shippingAmount),
        tax_minor=minor("taxAmount", request.taxAmount),
        discount_minor=minor("discountAmount", request.discountAmount),
    )
    stated_total = minor("totalAmount", request.totalAmount)
    if problems:
        raise ValidationFailed(problems)
    check_total(amounts, stated_total)
    return OrderDraft(
        customer_id=request.customerId,
        customer_email=request.customerEmail,
        customer_name=request.customerName,
        amounts=amounts,
        shipping_address=request.shippingAddress.to_domain(),
        billing_address=request.billingAddress.to_domain() if request.billingAddress else None,
        metadata=request.metadata,
    )


def changes_from_request(request: OrderUpdateIn) -> OrderChanges:
    return OrderChanges(
        status=request.status,
        tracking_number=request.trackingNumber,
        shipping_address=request.shippingAddress.to_domain() if request.shippingAddress else None,
        metadata=request.metadata,
    )


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    order: Order
    client_secret: str | None


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    last_key: str | None
    has_more: bool


class OrderService:
    def __init__(
        self, store: Store, payments: PaymentProvider, clock: Clock, cursors: CursorCodec
    ) -> None:
        self._store = store
        self._payments = payments
        self._clock = clock
        self._cursors = cursors

    # -- create ---------------------------------------------------------------------

    async def create(self, request: OrderCreateIn, order_id: uuid.UUID) -> CreatedOrder:
        """Create the order `order_id`. The intent is created first with the provider
        idempotency key `order:{id}`, so running this again for the same id (a retried
        request) reuses the intent and, if the order committed already, returns it."""
        draft = draft_from_request(request)
        try:
            intent = await self._payments.create_intent(
                amount=draft.total_minor,
                currency=draft.amounts.currency,
                order_id=str(order_id),
                idempotency_key=f"order:{order_id}",
            )
        except ProviderError as exc:
            log.error("payment_intent_failed", order_id=str(order_id), error=str(exc))
            raise UpstreamError(
                "Payment provider error: could not create the payment intent",
                code="payment_provider_error",
            ) from exc
        order = Order.create(
            order_id,
            draft,
            payment_provider=self._payments.name,
            payment_intent_id=intent.id,
            now=self._clock.now(),
        )
        async with self._store.unit_of_work() as uow:
            try:
                await uow.orders.add(order)
            except AlreadyExists:
                existing = await uow.orders.get(order_id)
                assert existing is not None
                return CreatedOrder(existing, intent.client_secret)
            await uow.commit()
        log.info("order_created", order_id=str(order.id), total_minor=order.total_minor)
        return CreatedOrder(order, intent.client_secret)

    # -- read -----------------------------------------------------------------------

    async def get(self, order_id: str) -> tuple[Order, list[OrderEvent]]:
        parsed = parse_uuid(order_id)
        async with self._store.unit_of_work(read_only=True) as uow:
            order = await uow.orders.get(parsed) if parsed else None
            if order is None:
                raise NotFound("Order not found")
            return order, await uow.orders.history(order.id)

    async def list(
        self,
        *,
        limit: int,
        last_key: str | None,
        status: OrderStatus | None,
        customer_id: str | None,
    ) -> OrderPage:
        order_filter = OrderFilter(status=status, customer_id=customer_id)
        scope = f"orders|{status or ''}|{customer_id or ''}"
        before = self._cursors.decode(last_key, scope) if last_key else None
        async with self._store.unit_of_work(read_only=True) as uow:
            rows = await uow.orders.list_page(order_filter, before, limit + 1)
        has_more = len(rows) > limit
        orders = rows[:limit]
        next_key = self._cursors.encode(orders[-1].id, scope) if has_more and orders else None
        return OrderPage(orders, next_key, has_more)

    # -- change ---------------------------------------------------------------------

    async def update(self, order_id: str, request: OrderUpdateIn) -> Order:
        changes = changes_from_request(request)

        async def change(order: Order, _uow: UnitOfWork, now: datetime) -> None:
            order.apply_changes(changes, now, EventSource.API)

        return await self._change(order_id, change)

    async def cancel(self, order_id: str) -> Order:
        """DELETE: cancel a pending payment at the provider (refund it if it turns out to
        have succeeded), or refund what is left of a completed one; then cancel."""
        order, _ = await self.get(order_id)
        order.check_cancellable()
        intent_status = await self._settle_payment_for_cancel(order)

        async def change(current: Order, _uow: UnitOfWork, now: datetime) -> None:
            current.check_cancellable()
            if intent_status == IntentStatus.SUCCEEDED and current.paid_at is None:
                current.record_payment_succeeded(now, EventSource.PROVIDER)
            left = current.refundable_minor
            # Cancel first: a refund of a cancelled order leaves its status `cancelled`.
            current.cancel(now, EventSource.API)
            if left > 0:
                refund = await self._refund_at_provider(current, left)
                current.record_refund(refund, now, EventSource.PROVIDER)

        return await self._change(order_id, change)

    async def _settle_payment_for_cancel(self, order: Order) -> IntentStatus | None:
        if order.payment_intent_id is None or order.payment_status not in (
            PaymentStatus.PENDING,
            PaymentStatus.FAILED,
        ):
            return None
        try:
            intent = await self._payments.cancel_intent(order.payment_intent_id)
        except IntentNotFound:
            log.warning("cancel_unknown_intent", order_id=str(order.id))
            return None
        except ProviderError as exc:
            raise UpstreamError(
                "Payment provider error: could not cancel the payment",
                code="payment_provider_error",
            ) from exc
        return intent.status

    async def _refund_at_provider(self, order: Order, amount_minor: int) -> Refund:
        assert order.payment_intent_id is not None
        try:
            refund = await self._payments.refund(
                intent_id=order.payment_intent_id,
                amount=amount_minor,
                reason="requested_by_customer",
                idempotency_key=f"cancel:{order.id}",
            )
        except ProviderError as exc:
            raise UpstreamError(
                "Payment provider error: could not refund the payment",
                code="payment_provider_error",
            ) from exc
        known = {status.value for status in RefundStatus}
        status = RefundStatus(refund.status) if refund.status in known else RefundStatus.PENDING
        return Refund(refund.id, refund.amount, refund.reason, status, self._clock.now())

    async def _change(
        self,
        order_id: str,
        change: Callable[[Order, UnitOfWork, datetime], Awaitable[None]],
    ) -> Order:
        """Load, change and save with the version check; on a concurrent change, retry
        from a fresh read."""
        parsed = parse_uuid(order_id)
        if parsed is None:
            raise NotFound("Order not found")
        for _attempt in range(MAX_CONFLICT_RETRIES):
            async with self._store.unit_of_work() as uow:
                order = await uow.orders.get(parsed)
                if order is None:
                    raise NotFound("Order not found")
                await change(order, uow, self._clock.now())
                if order.pending_events:
                    try:
                        await uow.orders.save(order)
                    except ConcurrencyConflict:
                        continue
                    await uow.commit()
                return order
        raise Conflict("The order is being changed by another request; try again")
