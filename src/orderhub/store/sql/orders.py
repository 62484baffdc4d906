"""Orders in SQL: reads on the orders table's indexes, and the unit of work that writes
an order change with its events, deliveries and counters in one transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from orderhub.delivery.model import DeliveryTargets
from orderhub.kit.clock import epoch_ms
from orderhub.orders.domain import Order, OrderEvent
from orderhub.store.mapping import event_from
from orderhub.store.protocol import AlreadyExists, ConcurrencyConflict, OrderFilter
from orderhub.store.sql import tables as t
from orderhub.store.sql.counters import add_counters
from orderhub.store.sql.engine import Prepared, PreparedWrite, SqlEngine
from orderhub.store.sql.mappers import (
    EVENT_COLUMNS,
    delivery_row,
    event_row,
    order_of,
    order_row,
)
from orderhub.store.unit_of_work import OrderRepositoryBase, OrderWrite, UnitOfWorkBase

_ORDER = (t.orders.c.document, t.orders.c.version)
# the hot reads of GET /api/orders/{id}, built once
_BY_ID = Prepared(select(*_ORDER).where(t.orders.c.id == bindparam("order_id")))
_HISTORY = Prepared(
    select(*EVENT_COLUMNS)
    .where(t.order_events.c.order_id == bindparam("order_id"))
    .order_by(t.order_events.c.order_version, t.order_events.c.id)
)
# the writes of every new order, built once
_INSERT_ORDER = PreparedWrite(insert(t.orders))
_INSERT_EVENTS = PreparedWrite(insert(t.order_events))
_INSERT_DELIVERIES = PreparedWrite(insert(t.deliveries))


class SqlOrderRepository(OrderRepositoryBase):
    def __init__(self, db: SqlEngine, targets: DeliveryTargets) -> None:
        super().__init__(targets)
        self._db = db

    async def _one(self, *conditions: object) -> Order | None:
        row = await self._db.first_row(select(*_ORDER).where(*conditions))  # type: ignore[arg-type]
        return order_of(row) if row else None

    async def _get(self, order_id: uuid.UUID) -> Order | None:
        [rows] = await self._db.fetch([(_BY_ID, {"order_id": str(order_id)})])
        return order_of(rows[0]) if rows else None

    async def peek_with_history(self, order_id: uuid.UUID) -> tuple[Order, list[OrderEvent]] | None:
        params = {"order_id": str(order_id)}
        orders, events = await self._db.fetch([(_BY_ID, params), (_HISTORY, params)])
        if not orders:
            return None
        return order_of(orders[0]), [event_from(row._mapping) for row in events]

    async def _get_by_payment_intent(self, intent_id: str) -> Order | None:
        return await self._one(t.orders.c.payment_intent_id == intent_id)

    async def list_page(
        self, order_filter: OrderFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Order]:
        o = t.orders.c
        query = select(*_ORDER)
        if order_filter.status is not None:
            query = query.where(o.status == order_filter.status.value)
        if order_filter.customer_id is not None:
            query = query.where(o.customer_id == order_filter.customer_id)
        if before_id is not None:
            query = query.where(o.id < str(before_id))
        query = query.order_by(o.id.desc()).limit(limit)
        rows = await self._db.rows(query)
        return [order_of(row) for row in rows]

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        [rows] = await self._db.fetch([(_HISTORY, {"order_id": str(order_id)})])
        return [event_from(row._mapping) for row in rows]

    async def with_unsent_refunds(self, changed_before: datetime, limit: int) -> list[Order]:
        o = t.orders.c
        rows = await self._db.rows(
            select(*_ORDER)
            .where(o.unsent_refunds > 0, o.updated_at < epoch_ms(changed_before))
            .order_by(o.updated_at)
            .limit(limit)
        )
        return [order_of(row) for row in rows]


class SqlUnitOfWork(UnitOfWorkBase):
    def __init__(self, db: SqlEngine, targets: DeliveryTargets, signal: asyncio.Event) -> None:
        super().__init__(signal)
        self._db = db
        self.orders = SqlOrderRepository(db, targets)

    async def _write(self, writes: list[OrderWrite]) -> None:
        async with self._db.write() as conn:
            for write in writes:
                row = order_row(write.order)
                if write.expected_version is None:
                    # no savepoint: AlreadyExists ends (and rolls back) the whole write
                    try:
                        await conn.run(_INSERT_ORDER, [row])
                    except IntegrityError:
                        raise AlreadyExists(str(write.order.id)) from None
                else:
                    result = await conn.execute(
                        update(t.orders)
                        .where(
                            t.orders.c.id == row["id"],
                            t.orders.c.version == write.expected_version,
                        )
                        .values(row)
                    )
                    if result.rowcount != 1:
                        raise ConcurrencyConflict(str(write.order.id))
                if write.events:
                    await conn.run(
                        _INSERT_EVENTS,
                        [event_row(e, write.order, write.event_document) for e in write.events],
                    )
                if write.deliveries:
                    await conn.run(_INSERT_DELIVERIES, [delivery_row(d) for d in write.deliveries])
            await add_counters(conn, [w.counters for w in writes])
