"""Order use cases: validate, call the provider, change the order, commit with its events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog

from orderhub.kit.backpressure import Backpressure
from orderhub.kit.clock import Clock
from orderhub.kit.cursor import Cursors
from orderhub.kit.errors import (
    Conflict,
    FieldProblem,
    NotFound,
    UpstreamError,
    ValidationFailed,
)
from orderhub.kit.ids import parse_uuid
from orderhub.kit.money import AmountError, to_minor
from orderhub.monitoring.error_log import Component, ErrorLog
from orderhub.orders.domain import (
    Amounts,
    EventSource,
    LineItem,
    Order,
    OrderChanges,
    OrderDraft,
    OrderEvent,
    OrderStatus,
    Refund,
    RefundStatus,
    cancel_refund_id,
    check_total,
)
from orderhub.orders.schemas import OrderCreateIn, OrderUpdateIn
from orderhub.payments.provider import PaymentProvider, ProviderError
from orderhub.payments.service import PaymentService
from orderhub.payments.units import UnitsError, to_provider
from orderhub.store.protocol import AlreadyExists, OrderFilter, Store, UnitOfWork
from orderhub.store.unit_of_work import update_order

log = structlog.get_logger(__name__)


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
    try:
        to_provider(amounts.computed_total_minor, currency)
    except UnitsError as exc:
        raise ValidationFailed.one(
            "totalAmount", f"cannot be charged exactly by the payment provider: {exc}"
        ) from None
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
        # `"metadata": null` (given, and null) clears the map; leaving it out changes nothing
        clear_metadata="metadata" in request.model_fields_set and request.metadata is None,
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
        self,
        store: Store,
        payments: PaymentProvider,
        payment_service: PaymentService,
        clock: Clock,
        cursors: Cursors,
        error_log: ErrorLog,
        backpressure: Backpressure | None = None,
    ) -> None:
        self._store = store
        self._payments = payments
        self._payment_service = payment_service
        self._clock = clock
        self._cursors = cursors
        self._error_log = error_log
        self._backpressure = backpressure or Backpressure(0)

    # -- create ---------------------------------------------------------------------

    async def create(self, request: OrderCreateIn, order_id: uuid.UUID) -> CreatedOrder:
        """Create the order `order_id`. The intent is created first with the provider
        idempotency key `order:{id}`, so running this again for the same id (a retried
        request) reuses the intent and, if the order committed already, returns it."""
        draft = draft_from_request(request)
        await self._backpressure.wait()
        try:
            intent = await self._payments.create_intent(
                amount=to_provider(draft.total_minor, draft.amounts.currency),
                currency=draft.amounts.currency,
                order_id=str(order_id),
                idempotency_key=f"order:{order_id}",
            )
        except ProviderError as exc:
            await self._error_log.record(
                Component.ORDERS,
                "Failed to create the payment intent",
                error=str(exc),
                order_id=order_id,
            )
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
        try:
            async with self._store.unit_of_work() as uow:
                await uow.orders.add(order)
                await uow.commit()
        except AlreadyExists:
            # a retry of a request whose order committed already: answer with that order
            async with self._store.unit_of_work() as uow:
                existing = await uow.orders.get(order_id)
            assert existing is not None
            return CreatedOrder(existing, intent.client_secret)
        log.info("order_created", order_id=str(order.id), total_minor=order.total_minor)
        return CreatedOrder(order, intent.client_secret)

    # -- read -----------------------------------------------------------------------

    async def get(self, order_id: str) -> tuple[Order, list[OrderEvent]]:
        parsed = parse_uuid(order_id)
        async with self._store.unit_of_work() as uow:
            found = await uow.orders.peek_with_history(parsed) if parsed else None  # read only
        if found is None:
            raise NotFound("Order not found")
        return found

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
        cursors = await self._cursors.codec()
        before = cursors.decode(last_key, scope) if last_key else None
        async with self._store.unit_of_work() as uow:
            rows = await uow.orders.list_page(order_filter, before, limit + 1)
        has_more = len(rows) > limit
        orders = rows[:limit]
        next_key = cursors.encode(orders[-1].id, scope) if has_more and orders else None
        return OrderPage(orders, next_key, has_more)

    # -- change ---------------------------------------------------------------------

    async def update(
        self, order_id: str, request: OrderUpdateIn, source: EventSource = EventSource.API
    ) -> Order:
        changes = changes_from_request(request)

        async def change(order: Order, _uow: UnitOfWork, now: datetime) -> None:
            order.apply_changes(changes, now, source)

        parsed = parse_uuid(order_id)
        if parsed is None:
            raise NotFound("Order not found")
        await self._backpressure.wait()
        return await update_order(self._store, self._clock, parsed, change)

    async def cancel(self, order_id: str, source: EventSource = EventSource.API) -> Order:
        """DELETE: cancel a pending payment at the provider (refund it if it turns out to
        have succeeded), or refund what is left of a completed one; then cancel.

        The cancellation and its full refund (`requested`) commit together, guarded by the
        order's version: of several DELETEs at once exactly one cancels, the others see
        `cancelled` and get 409. Then the refund is sent; if the provider cannot be reached
        the answer is still 200 (the order shows the refund `requested`) and the worker's
        re-send delivers it with the same provider idempotency key."""
        order, _ = await self.get(order_id)
        order.check_cancellable()
        await self._backpressure.wait()
        await self._payment_service.provider_for(order)
        await self._payment_service.settle_for_cancel(order)
        refund_id = cancel_refund_id(order.id)

        async def change(current: Order, _uow: UnitOfWork, now: datetime) -> None:
            current.check_cancellable()  # another DELETE (or the provider) got here first
            left = current.refundable_minor
            # Cancel first: a refund of a cancelled order leaves its status `cancelled`.
            current.cancel(now, source)
            if left > 0:
                refund = Refund(
                    refund_id, left, "requested_by_customer", RefundStatus.REQUESTED, now
                )
                current.record_refund(refund, now, source)

        cancelled = await update_order(self._store, self._clock, order.id, change)
        try:
            sent = await self._payment_service.send_refund(cancelled, refund_id, source)
        except UpstreamError:
            # recorded already; the refund stays `requested` and the worker sends it
            log.warning("cancel_refund_unsent", order_id=str(cancelled.id))
            return await self._reread(cancelled.id)
        if sent.refused is not None:
            raise Conflict(
                f"The order is cancelled, but the payment provider refused the refund: "
                f"{sent.refused}",
                code="refund_failed",
            )
        return sent.order

    async def _reread(self, order_id: uuid.UUID) -> Order:
        async with self._store.unit_of_work() as uow:
            order = await uow.orders.get(order_id)
        if order is None:
            raise NotFound("Order not found")
        return order
