"""Change one order safely: read, change, save with the version check, retry on conflict."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from orderhub.kit.clock import Clock
from orderhub.kit.errors import Contended, NotFound
from orderhub.orders.domain import Order
from orderhub.store.protocol import ConcurrencyConflict, Store, UnitOfWork

MAX_CONFLICT_RETRIES = 50

Change = Callable[[Order, UnitOfWork, datetime], Awaitable[None]]


async def change_order(store: Store, clock: Clock, order_id: uuid.UUID, change: Change) -> Order:
    """Apply `change` to a fresh read of the order and commit it with its events. When
    another writer got there first (optimistic version), run `change` again on the new
    state, so a change that still fits is never refused because of a race."""
    for _attempt in range(MAX_CONFLICT_RETRIES):
        async with store.unit_of_work() as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise NotFound("Order not found")
            await change(order, uow, clock.now())
            if order.dirty:
                try:
                    await uow.orders.save(order)
                except ConcurrencyConflict:
                    continue
                await uow.commit()
            return order
    raise Contended("The order is being changed by other requests; try again")
