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
from orderhub.store.counting import CountedTransition, DeliveryTransitions, added_counters
from orderhub.store.documents import is_slim, order_as_of_event
from orderhub.store.mapping import (
    attempt_from,
    delivery_from,
    delivery_state_values,
    event_from,
    ms,
)
from orderhub.store.protocol import ADD_BATCH
from orderhub.store.sql import tables as t
from orderhub.store.sql.counters import add_counters
from orderhub.store.sql.engine import SqlEngine
from orderhub.store.sql.mappers import (
    EVENT_COLUMNS,
    attempt_row,
    delivery_row,
)

_D, _E = t.deliveries, t.order_events


def _with_type() -> Any:
    return select(_D, _E.c.type).join(_E, _E.c.id == _D.c.event_id)


_IN_CHUNK = 500  # ids per `IN (...)`, well within every backend's bound-parameter limit


async def _since_many(
    conn: Any, oldest: dict[str, int]
) -> dict[str, tuple[tuple[dict[str, Any], int] | None, list[tuple[int, dict[str, Any]]]]]:
    """For each order (id -> the oldest version wanted), its current document (read
    first) and the documents of its events after that version up to the current one
    (the rebuild keeps only those; it may be handed more): what rebuilds the order as of
    a slim event. A few statements for all the orders, not two per order."""
    o, e = t.orders.c, _E.c
    ids = list(oldest)
    current: dict[str, tuple[dict[str, Any], int]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        rows = await conn.execute(
            select(o.id, o.document, o.version).where(o.id.in_(ids[start : start + _IN_CHUNK]))
        )
        current.update({row.id: (row.document, row.version) for row in rows.all()})
    later: dict[str, list[tuple[int, dict[str, Any]]]] = {order_id: [] for order_id in ids}
    changed = [i for i in ids if i in current and current[i][1] > oldest[i]]
    for start in range(0, len(changed), _IN_CHUNK):
        chunk = changed[start : start + _IN_CHUNK]
        rows = await conn.execute(
            select(e.order_id, e.order_version, e.order_document).where(
                e.order_id.in_(chunk),
                e.order_version > min(oldest[i] for i in chunk),
            )
        )
        for row in rows.all():
            if oldest[row.order_id] < row.order_version <= current[row.order_id][1]:
                later[row.order_id].append((row.order_version, row.order_document))
    return {order_id: (current.get(order_id), later[order_id]) for order_id in ids}


def _id_is(delivery_id: uuid.UUID) -> Any:
    return _D.c.id == str(delivery_id)


def _guard(before: Delivery) -> tuple[Any, ...]:
    """The stored delivery still has `before`'s status, lease owner and lease expiry."""
    d = _D.c
    return (
        d.status == before.status.value,
        d.lease_owner.is_(None)
        if before.lease_owner is None
        else d.lease_owner == before.lease_owner,
        d.lease_until.is_(None)
        if before.lease_until is None
        else d.lease_until == ms(before.lease_until),
    )


def _group_key(before: Delivery, after: Delivery) -> tuple[Any, ...]:
    """Changes with equal keys are written by one UPDATE: the same guard, and the same
    new values of the columns they change (last)."""
    old, new = delivery_state_values(before), delivery_state_values(after)
    changed = tuple(
        sorted((column, value) for column, value in new.items() if value != old[column])
    )
    return (before.status.value, before.lease_owner, ms(before.lease_until), changed)


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
        rows = await self._db.rows(
            _with_type().where(due).order_by(d.next_attempt_at, d.id).limit(limit)
        )
        return [delivery_from(row._mapping) for row in rows]

    async def _transition(self, change: CountedTransition) -> bool:
        return (await self._transition_many([change]))[0]

    async def _transition_many(self, changes: list[CountedTransition]) -> list[bool]:
        """One write transaction for all of them. Changes that move the same columns to
        the same values from the same status and lease (a batch being leased) are one
        `UPDATE ... WHERE id IN (...) AND <the guard> RETURNING id`; the others one
        guarded UPDATE each. The attempts and counters of those written go with them."""
        if not changes:
            return []
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, change in enumerate(changes):
            groups.setdefault(_group_key(change.before, change.after), []).append(index)
        written = [False] * len(changes)
        async with self._db.write() as conn:
            for key in sorted(groups, key=repr):
                indexes = sorted(groups[key], key=lambda i: str(changes[i].before.id))
                if len(indexes) == 1 or not key[-1]:
                    for index in indexes:
                        before, after = changes[index].before, changes[index].after
                        result = await conn.execute(
                            update(_D)
                            .where(_id_is(before.id), *_guard(before))
                            .values(delivery_state_values(after))
                        )
                        written[index] = result.rowcount == 1
                    continue
                by_id = {str(changes[i].before.id): i for i in indexes}
                ids = list(by_id)
                for start in range(0, len(ids), _IN_CHUNK):
                    rows = await conn.execute(
                        update(_D)
                        .where(
                            _D.c.id.in_(ids[start : start + _IN_CHUNK]),
                            *_guard(changes[indexes[0]].before),
                        )
                        .values(dict(key[-1]))
                        .returning(_D.c.id)
                    )
                    for (found,) in rows.all():
                        written[by_id[found]] = True
            attempts = [
                attempt_row(change.attempt)
                for change, ok in zip(changes, written, strict=True)
                if ok and change.attempt is not None
            ]
            if attempts:
                await conn.execute(insert(t.delivery_attempts), attempts)
            moved = [change.counters for change, ok in zip(changes, written, strict=True) if ok]
            if moved:
                await add_counters(conn, moved)
        return written

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
            rebuilding = await _since_many(conn, oldest)
        events = {row.id: row for row in rows}
        loaded = []
        for delivery in deliveries:
            row = events.get(str(delivery.event_id))
            if row is None:
                continue
            current, later = rebuilding.get(row.order_id, (None, []))
            order = order_as_of_event(row.order_document, row.order_version, current, later)
            loaded.append(
                DueDelivery(delivery=delivery, event=event_from(row._mapping), order=order)
            )
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

    async def add(self, deliveries: list[Delivery]) -> None:
        for start in range(0, len(deliveries), ADD_BATCH):
            batch = deliveries[start : start + ADD_BATCH]
            async with self._db.write() as conn:
                await conn.execute(insert(_D), [delivery_row(d) for d in batch])
                await add_counters(conn, [added_counters(batch)])

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None:
        row = await self._db.first_row(_with_type().where(_D.c.id == str(delivery_id)))
        return delivery_from(row._mapping) if row else None

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
        rows = await self._db.rows(query)
        return [delivery_from(row._mapping) for row in rows]

    async def attempts(self, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
        a = t.delivery_attempts.c
        rows = await self._db.rows(
            select(t.delivery_attempts)
            .where(a.delivery_id == str(delivery_id))
            .order_by(a.at, a.id)
        )
        return [attempt_from(row._mapping) for row in rows]

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
