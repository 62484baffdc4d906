"""The shared part of every backend's unit of work, and the retry loop that drives it.

A unit of work remembers each order it read, stages each order it is asked to write
(with the order's events, or the internal `order.changed` when a saved change raised
none; the deliveries `delivery.model.fan_out` makes of them; and the counters
`monitoring.rollups` says the change moves) and hands the whole set to its backend at
`commit()`, which writes it all or nothing. The backend's part is small: read by key or
index, and write what it is handed.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from orderhub.delivery.model import Delivery, DeliveryTargets, fan_out
from orderhub.kit.clock import Clock
from orderhub.kit.errors import Contended, NotFound
from orderhub.monitoring.rollups import BACKLOG, Counters, order_counters
from orderhub.orders.domain import Order, OrderEvent
from orderhub.store.documents import event_document
from orderhub.store.protocol import ConcurrencyConflict, OrderFilter, Store, UnitOfWork


@dataclass(frozen=True, slots=True)
class OrderWrite:
    """One order's part of a commit: everything a backend writes for it, atomically."""

    order: Order  # as it will be stored; `order.version` is the new version
    expected_version: int | None  # the stored version it replaces; None: a new order
    previous_intent_id: str | None  # the intent id stored before (None: none or new)
    events: list[OrderEvent]
    event_document: dict[str, Any]  # what each of `events` keeps of the order
    deliveries: list[Delivery]
    counters: Counters


class OrderRepositoryBase(ABC):
    """Remembers what was read; stages what is written. Backends add the reads."""

    def __init__(self, targets: DeliveryTargets) -> None:
        self._targets = targets
        self._read: dict[uuid.UUID, Order] = {}
        self._staged: dict[uuid.UUID, OrderWrite] = {}

    # -- reads (the backend's) --------------------------------------------------------

    @abstractmethod
    async def _get(self, order_id: uuid.UUID) -> Order | None: ...

    @abstractmethod
    async def _get_by_payment_intent(self, intent_id: str) -> Order | None: ...

    @abstractmethod
    async def list_page(
        self, order_filter: OrderFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Order]: ...

    @abstractmethod
    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]: ...

    @abstractmethod
    async def with_unsent_refunds(self, changed_before: datetime, limit: int) -> list[Order]: ...

    async def get(self, order_id: uuid.UUID) -> Order | None:
        return self._remember(await self._get(order_id))

    async def peek(self, order_id: uuid.UUID) -> Order | None:
        return await self._get(order_id)

    async def peek_with_history(self, order_id: uuid.UUID) -> tuple[Order, list[OrderEvent]] | None:
        """`peek` and `history` together (a backend may read both at once)."""
        order = await self._get(order_id)
        return (order, await self.history(order.id)) if order is not None else None

    async def get_by_payment_intent(self, intent_id: str) -> Order | None:
        return self._remember(await self._get_by_payment_intent(intent_id))

    def _remember(self, order: Order | None) -> Order | None:
        if order is not None and order.id not in self._read:
            self._read[order.id] = order.snapshot()
        return order

    # -- staged writes ----------------------------------------------------------------

    async def add(self, order: Order) -> None:
        self._stage(order, None)

    async def save(self, order: Order) -> None:
        before = self._read.get(order.id)
        staged = self._staged.get(order.id)
        current = staged.order if staged else before
        if current is None:
            raise RuntimeError("save() takes an order read in the same unit of work")
        if current.version != order.version:
            raise ConcurrencyConflict(str(order.id))
        self._stage(order, before)

    def _stage(self, order: Order, before: Order | None) -> None:
        earlier = self._staged.get(order.id)
        events = order.take_events()
        if before is not None and not events and not (earlier and earlier.events):
            # a saved change without an event still moves the sheet row (its Updated At
            # and Version at least): the internal event routes it to the sheet alone
            events = [order.change_event(order.updated_at)]
        if before is not None:
            order.version += 1
        order.dirty = False
        stored = order.snapshot()
        deliveries = fan_out(events, self._targets, order.updated_at)
        counters = order_counters(before, stored)
        backlog = len(deliveries) + (earlier.counters.gauges.get(BACKLOG, 0) if earlier else 0)
        if backlog:
            counters.gauges[BACKLOG] = backlog
        self._staged[order.id] = OrderWrite(
            order=stored,
            expected_version=earlier.expected_version
            if earlier
            else (before.version if before else None),
            previous_intent_id=before.payment_intent_id if before else None,
            events=(earlier.events if earlier else []) + events,
            event_document=event_document(stored, before.refunds if before else []),
            deliveries=(earlier.deliveries if earlier else []) + deliveries,
            counters=counters,
        )

    def take_staged(self) -> list[OrderWrite]:
        staged, self._staged = list(self._staged.values()), {}
        return staged


class UnitOfWorkBase(ABC):
    """Commit hands the staged writes to the backend's `_write`, then wakes the local
    worker when deliveries were written."""

    orders: OrderRepositoryBase

    def __init__(self, outbox_signal: asyncio.Event) -> None:
        self._outbox_signal = outbox_signal
        self._committed = False

    @abstractmethod
    async def _write(self, writes: list[OrderWrite]) -> None:
        """Write every staged order change all or nothing; raise ConcurrencyConflict or
        AlreadyExists (writing nothing) when a guarded write loses."""

    async def commit(self) -> None:
        writes = self.orders.take_staged()
        if writes:
            await self._write(writes)
        self._committed = True
        if any(w.deliveries for w in writes):
            self._outbox_signal.set()  # wake this process's worker at once

    async def rollback(self) -> None:
        self.orders.take_staged()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self._committed:
            await self.rollback()


MAX_CONFLICT_RETRIES = 50

Change = Callable[[Order, UnitOfWork, datetime], Awaitable[None]]


async def update_order(store: Store, clock: Clock, order_id: uuid.UUID, change: Change) -> Order:
    """Apply `change` to a fresh read of the order and commit it with its events. When
    another writer got there first (a conflict at save or at commit), the whole unit of
    work runs again on the new state, so a change that still fits is never refused
    because of a race."""
    for _attempt in range(MAX_CONFLICT_RETRIES):
        async with store.unit_of_work() as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise NotFound("Order not found")
            await change(order, uow, clock.now())
            if not order.dirty:
                return order
            try:
                await uow.orders.save(order)
                await uow.commit()
            except ConcurrencyConflict:
                continue
            return order
    raise Contended("The order is being changed by other requests; try again")
