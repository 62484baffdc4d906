"""The outbox in SQL: due deliveries by the (status, next attempt) index, conditional
transitions, and the event and order each delivery carries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update

from orderhub.delivery.model import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryStatus,
    DueDelivery,
)
from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.monitoring.rollups import Counters
from orderhub.store.counting import DeliveryTransitions
from orderhub.store.documents import is_slim, order_as_of_event
from orderhub.store.sql import tables as t
from orderhub.store.sql.counters import add_counters
from orderhub.store.sql.engine import SqlEngine
from orderhub.store.sql.mappers import (
    EVENT_COLUMNS,
    attempt_of,
    attempt_row,
    delivery_of,
    delivery_state,
    event_of,
    ms,
)

_D, _E = t.deliveries, t.order_events


def _with_type() -> Any:
    return select(_D, _E.c.type).join(_E, _E.c.id == _D.c.event_id)


async def _since(
    conn: Any, order_id: str, version: int
) -> tuple[tuple[dict[str, Any], int] | None, list[tuple[int, dict[str, Any]]]]:
    """The order's current document (read first) and its events' documents after
    `version` up to the current one: what rebuilds the order as of a slim event."""
    o, e = t.orders.c, _E.c
    current = (await conn.execute(select(o.document, o.version).where(o.id == order_id))).first()
    if current is None:
        return None, []
    later = (
        await conn.execute(
            select(e.order_version, e.order_document).where(
                e.order_id == order_id,
                e.order_version > version,
                e.order_version <= current.version,
            )
        )
    ).all()
    return (current.document, current.version), [
        (row.order_version, row.order_document) for row in later
    ]


class SqlDeliveryRepository(DeliveryTransitions):
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def due(self, now: datetime, limit: int) -> list[Delivery]:
        d = _D.c
        now_ms = epoch_ms(now)
        due = or_(
            and_(d.status == DeliveryStatus.PENDING.value, d.next_attempt_at <= now_ms),
            and_(d.status == DeliveryStatus.IN_FLIGHT.value, d.lease_until <= now_ms),
        )
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    _with_type().where(due).order_by(d.next_attempt_at, d.id).limit(limit)
                )
            ).all()
        return [delivery_of(row) for row in rows]

    async def _transition(
        self,
        before: Delivery,
        after: Delivery,
        attempt: DeliveryAttempt | None,
        counters: Counters,
    ) -> bool:
        d = _D.c
        async with self._db.write() as conn:
            result = await conn.execute(
                update(_D)
                .where(
                    d.id == str(before.id),
                    d.status == before.status.value,
                    d.lease_owner.is_(None)
                    if before.lease_owner is None
                    else d.lease_owner == before.lease_owner,
                    d.lease_until.is_(None)
                    if before.lease_until is None
                    else d.lease_until == ms(before.lease_until),
                )
                .values(delivery_state(after))
            )
            if result.rowcount != 1:
                return False
            if attempt is not None:
                await conn.execute(insert(t.delivery_attempts).values(attempt_row(attempt)))
            await add_counters(conn, [counters])
        return True

    async def load(self, deliveries: list[Delivery]) -> list[DueDelivery]:
        """Each delivery's event, and the order as of the event (an event written before
        slim events carries it whole; a slim one is rebuilt from the current order and the
        events after it, read in the same transaction)."""
        if not deliveries:
            return []
        e = _E.c
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(*EVENT_COLUMNS, e.order_version, e.order_document).where(
                        e.id.in_([str(d.event_id) for d in deliveries])
                    )
                )
            ).all()
            oldest: dict[str, int] = {}
            for found in rows:
                if is_slim(found.order_document):
                    v = found.order_version
                    oldest[found.order_id] = min(v, oldest.get(found.order_id, v))
            rebuilding = {
                order_id: await _since(conn, order_id, version)
                for order_id, version in oldest.items()
            }
        events = {row.id: row for row in rows}
        loaded = []
        for delivery in deliveries:
            row = events.get(str(delivery.event_id))
            if row is None:
                continue
            current, later = rebuilding.get(row.order_id, (None, []))
            order = order_as_of_event(row.order_document, row.order_version, current, later)
            loaded.append(DueDelivery(delivery=delivery, event=event_of(row), order=order))
        return loaded

    async def release(self, delivery_ids: list[uuid.UUID], worker_id: str) -> None:
        if not delivery_ids:
            return
        d = _D.c
        async with self._db.write() as conn:
            await conn.execute(
                update(_D)
                .where(
                    d.id.in_([str(i) for i in delivery_ids]),
                    d.status == DeliveryStatus.IN_FLIGHT.value,
                    d.lease_owner == worker_id,
                )
                .values(status=DeliveryStatus.PENDING.value, lease_owner=None, lease_until=None)
            )

    async def renew(
        self, delivery_ids: list[uuid.UUID], worker_id: str, lease_until: datetime
    ) -> set[uuid.UUID]:
        if not delivery_ids:
            return set()
        d = _D.c
        ours = and_(
            d.id.in_([str(i) for i in delivery_ids]),
            d.status == DeliveryStatus.IN_FLIGHT.value,
            d.lease_owner == worker_id,
        )
        async with self._db.write() as conn:
            await conn.execute(update(_D).where(ours).values(lease_until=epoch_ms(lease_until)))
            kept = (await conn.execute(select(d.id).where(ours))).scalars().all()
        return {uuid.UUID(i) for i in kept}

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_with_type().where(_D.c.id == str(delivery_id)))).first()
        return delivery_of(row) if row else None

    async def list_page(
        self, delivery_filter: DeliveryFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Delivery]:
        d = _D.c
        query = _with_type()
        if delivery_filter.status is not None:
            query = query.where(d.status == delivery_filter.status.value)
        if delivery_filter.order_id is not None:
            query = query.where(d.order_id == str(delivery_filter.order_id))
        if delivery_filter.integration is not None:
            query = query.where(d.integration == delivery_filter.integration.value)
        if delivery_filter.created_since is not None:
            query = query.where(d.created_at >= epoch_ms(delivery_filter.created_since))
        if before_id is not None:
            query = query.where(d.id < str(before_id))
        query = query.order_by(d.id.desc()).limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [delivery_of(row) for row in rows]

    async def attempts(self, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
        a = t.delivery_attempts.c
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(t.delivery_attempts)
                    .where(a.delivery_id == str(delivery_id))
                    .order_by(a.at, a.id)
                )
            ).all()
        return [attempt_of(row) for row in rows]

    async def next_due_at(self) -> datetime | None:
        d = _D.c
        async with self._db.read() as conn:
            value = (
                await conn.execute(
                    select(func.min(d.next_attempt_at)).where(
                        d.status == DeliveryStatus.PENDING.value
                    )
                )
            ).scalar_one_or_none()
        return from_epoch_ms(value) if value is not None else None

    async def oldest_waiting_at(self) -> datetime | None:
        d = _D.c
        oldest: int | None = None
        async with self._db.read() as conn:
            for status in (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT):
                value = (
                    await conn.execute(
                        select(d.created_at)
                        .where(d.status == status.value)
                        .order_by(d.created_at)
                        .limit(1)
                    )
                ).scalar_one_or_none()
                if value is not None and (oldest is None or value < oldest):
                    oldest = value
        return from_epoch_ms(oldest) if oldest is not None else None
