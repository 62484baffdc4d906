"""Resync: send the current state of orders from the store to an integration again.

One new delivery per order in scope, through the outbox (leased, retried, visible like
any other). Rebuilding a lost or hand-edited sheet is the main use: rows are upserted by
order id and version, so a resync never adds a row twice and never puts an older
version over a newer one, even while orders keep changing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import datetime

from orderhub.delivery.model import (
    RESYNCABLE,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Integration,
    resent,
    resync_delivery,
)
from orderhub.kit.clock import Clock
from orderhub.kit.durations import parse_since
from orderhub.kit.errors import Conflict, NotFound, ValidationFailed
from orderhub.kit.ids import parse_uuid
from orderhub.orders.domain import Order
from orderhub.store.protocol import ADD_BATCH, OrderFilter, Store

CONCURRENT_ORDERS = 8  # orders read and queued at the same time


class IntegrationNotConfigured(Conflict):
    code = "integration_not_configured"


class ResyncService:
    def __init__(self, store: Store, clock: Clock, enabled: Iterable[Integration]) -> None:
        self._store = store
        self._clock = clock
        self._enabled = frozenset(enabled)

    async def resync(
        self,
        integration: Integration | str,
        *,
        since: str | None = None,
        order_id: str | None = None,
    ) -> int:
        """Queue one delivery of each order's current state (the one order `order_id`, or
        every order created since `since`: `7d` or an ISO time; all without either) to
        `integration` (sheets or notifications). Returns how many were queued."""
        wanted = self._integration(integration)
        now = self._clock.now()
        start = parse_since(since, now) if since is not None else None
        if order_id is not None:
            parsed = parse_uuid(order_id)
            async with self._store.unit_of_work() as uow:
                order = await uow.orders.get(parsed) if parsed else None
            if order is None:
                raise NotFound("Order not found")
            return await self._queue([order], wanted, now)
        queued = 0
        before: uuid.UUID | None = None
        while True:
            async with self._store.unit_of_work() as uow:
                page = await uow.orders.list_page(OrderFilter(), before, ADD_BATCH)
            in_scope = [o for o in page if start is None or o.created_at >= start]
            queued += await self._queue(in_scope, wanted, now)
            if len(page) < ADD_BATCH or len(in_scope) < len(page):
                return queued  # the last page, or past the start (pages are newest first)
            before = page[-1].id

    def _integration(self, integration: Integration | str) -> Integration:
        try:
            wanted = Integration(integration)
        except ValueError:
            wanted = None
        if wanted not in RESYNCABLE:
            raise ValidationFailed.one("integration", "must be sheets or notifications")
        assert wanted is not None
        if wanted not in self._enabled:
            raise IntegrationNotConfigured(f"The {wanted} integration is not configured")
        return wanted

    async def _queue(self, orders: list[Order], integration: Integration, now: datetime) -> int:
        """For each order: the delivery of its newest event to the integration sent again
        (or left alone while it is still waiting), or a new one when there is none."""
        new: list[Delivery] = []
        limit = asyncio.Semaphore(CONCURRENT_ORDERS)

        async def one(order: Order) -> bool:
            async with limit:
                async with self._store.unit_of_work() as uow:
                    history = await uow.orders.history(order.id)
                fresh = resync_delivery(history, integration, now)
                if fresh is None:
                    return False
                existing = await self._delivery_of(fresh)
                if existing is None:
                    new.append(fresh)
                elif existing.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD):
                    # conditional: if another resync (or a worker) moved it first, it is queued
                    await self._store.deliveries.transition(existing, resent(existing, now))
                return True

        queued = sum(await asyncio.gather(*(one(order) for order in orders)))
        if new:
            await self._store.deliveries.add(new)
        if queued:
            self._store.outbox_signal.set()
        return queued

    async def _delivery_of(self, fresh: Delivery) -> Delivery | None:
        """The delivery already made of the same event to the same integration, if any
        (by order; the newest event's delivery is among the newest)."""
        wanted = DeliveryFilter(order_id=fresh.order_id, integration=fresh.integration)
        before: uuid.UUID | None = None
        while True:
            page = await self._store.deliveries.list_page(wanted, before, ADD_BATCH)
            for delivery in page:
                if delivery.event_id == fresh.event_id:
                    return delivery
            if len(page) < ADD_BATCH:
                return None
            before = page[-1].id
