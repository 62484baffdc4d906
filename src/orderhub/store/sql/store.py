"""The SQL store: SQLite (WAL, one writer at a time) or PostgreSQL, SQLAlchemy 2 Core async."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import and_, case, delete, event, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from orderhub.delivery.model import (
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    DeliveryTargets,
    DueDelivery,
    Integration,
)
from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.kit.ids import new_id
from orderhub.orders.domain import (
    EventSource,
    EventType,
    Order,
    OrderEvent,
    OrderStatus,
    PaymentStatus,
)
from orderhub.store.documents import order_from_document, order_to_document
from orderhub.store.protocol import (
    AlreadyExists,
    ApiKeyRecord,
    CallCounts,
    ConcurrencyConflict,
    ErrorEntry,
    IdempotencyRecord,
    OrderBuckets,
    OrderFilter,
    ProbeResult,
    ProbeSummary,
    StoreError,
)
from orderhub.store.sql import tables as t


def async_url(database_url: str) -> str:
    """`sqlite:///p` -> `sqlite+aiosqlite:///p`; `postgresql://...` -> psycopg (async)."""
    if database_url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + database_url.removeprefix("sqlite:///")
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    raise StoreError(f"not a SQL database url: {database_url.split(':', 1)[0]}")


def sync_url(database_url: str) -> str:
    """The same database through a synchronous driver (Alembic migrations)."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return database_url


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout for other processes, foreign keys, and explicit BEGINs:
    BEGIN IMMEDIATE for units of work that write, so a writer never has to upgrade a read
    lock (the usual source of "database is locked")."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("orderhub_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _order_row(order: Order, version: int) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "version": version,
        "customer_id": order.customer_id,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "payment_intent_id": order.payment_intent_id,
        "currency": order.currency,
        "total_minor": order.total_minor,
        "created_at": epoch_ms(order.created_at),
        "updated_at": epoch_ms(order.updated_at),
        "paid_at": epoch_ms(order.paid_at) if order.paid_at else None,
        "refunded_minor": order.refunded_minor,
        "unsent_refunds": len(order.unsent_refunds),
        "document": order_to_document(order),
    }


def _event_rows(
    events: list[OrderEvent], version: int, document: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        {
            "id": str(e.id),
            "order_id": str(e.order_id),
            "order_version": version,
            "type": e.type.value,
            "at": epoch_ms(e.at),
            "status": e.status.value,
            "payment_status": e.payment_status.value,
            "source": e.source.value,
            "order_document": document,
        }
        for e in events
    ]


class SqlOrderRepository:
    def __init__(self, conn: AsyncConnection, targets: DeliveryTargets) -> None:
        self._conn = conn
        self._targets = targets
        self.wrote_deliveries = False

    async def _write_events(self, order: Order, row: dict[str, Any]) -> None:
        """The order's events, each with the order as of this change, and one delivery per
        (event, integration) that applies: in the same transaction as the order."""
        events = order.take_events()
        if not events:
            return
        await self._conn.execute(
            insert(t.order_events), _event_rows(events, row["version"], row["document"])
        )
        created = row["updated_at"]
        deliveries = [
            {
                "id": str(new_id()),
                "event_id": str(event.id),
                "order_id": str(event.order_id),
                "integration": integration.value,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": created,
                "lease_owner": None,
                "lease_until": None,
                "last_error": None,
                "event_at": epoch_ms(event.at),
                "created_at": created,
                "delivered_at": None,
            }
            for event in events
            for integration in self._targets(event.type)
        ]
        if deliveries:
            await self._conn.execute(insert(t.deliveries), deliveries)
            self.wrote_deliveries = True

    async def get(self, order_id: uuid.UUID) -> Order | None:
        row = (
            await self._conn.execute(
                select(t.orders.c.document, t.orders.c.version).where(
                    t.orders.c.id == str(order_id)
                )
            )
        ).first()
        return order_from_document(row.document, row.version) if row else None

    async def get_by_payment_intent(self, intent_id: str) -> Order | None:
        row = (
            await self._conn.execute(
                select(t.orders.c.document, t.orders.c.version).where(
                    t.orders.c.payment_intent_id == intent_id
                )
            )
        ).first()
        return order_from_document(row.document, row.version) if row else None

    async def add(self, order: Order) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(insert(t.orders).values(_order_row(order, order.version)))
        except IntegrityError:
            raise AlreadyExists(str(order.id)) from None
        row = _order_row(order, order.version)
        await _bump(self._conn, _hour(row["created_at"]), _order_contribution(row))
        await self._write_events(order, row)
        order.dirty = False

    async def save(self, order: Order) -> None:
        new_version = order.version + 1
        row = _order_row(order, new_version)
        o = t.orders.c
        before = (
            await self._conn.execute(
                select(*(o[name] for name in _ORDER_STATS_COLUMNS)).where(
                    o.id == str(order.id), o.version == order.version
                )
            )
        ).first()
        if before is None:
            raise ConcurrencyConflict(str(order.id))
        result = await self._conn.execute(
            update(t.orders)
            .where(t.orders.c.id == str(order.id), t.orders.c.version == order.version)
            .values(row)
        )
        if result.rowcount != 1:
            raise ConcurrencyConflict(str(order.id))
        deltas = _order_contribution(row)
        for metric, value in _order_contribution(before).items():
            deltas[metric] = deltas.get(metric, 0) - value
        await _bump(self._conn, _hour(row["created_at"]), deltas)
        await self._write_events(order, row)
        order.version = new_version
        order.dirty = False

    async def with_unsent_refunds(self, changed_before: datetime, limit: int) -> list[Order]:
        o = t.orders.c
        rows = (
            await self._conn.execute(
                select(o.document, o.version)
                .where(o.unsent_refunds > 0, o.updated_at < epoch_ms(changed_before))
                .order_by(o.updated_at)
                .limit(limit)
            )
        ).all()
        return [order_from_document(row.document, row.version) for row in rows]

    async def list_page(
        self, order_filter: OrderFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Order]:
        query = select(t.orders.c.document, t.orders.c.version)
        if order_filter.status is not None:
            query = query.where(t.orders.c.status == order_filter.status.value)
        if order_filter.customer_id is not None:
            query = query.where(t.orders.c.customer_id == order_filter.customer_id)
        if before_id is not None:
            query = query.where(t.orders.c.id < str(before_id))
        query = query.order_by(t.orders.c.id.desc()).limit(limit)
        rows = (await self._conn.execute(query)).all()
        return [order_from_document(row.document, row.version) for row in rows]

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        rows = (
            await self._conn.execute(
                select(t.order_events)
                .where(t.order_events.c.order_id == str(order_id))
                .order_by(t.order_events.c.order_version, t.order_events.c.id)
            )
        ).all()
        return [
            OrderEvent(
                id=uuid.UUID(row.id),
                order_id=uuid.UUID(row.order_id),
                type=EventType(row.type),
                at=from_epoch_ms(row.at),
                status=OrderStatus(row.status),
                payment_status=PaymentStatus(row.payment_status),
                source=EventSource(row.source),
            )
            for row in rows
        ]


def _api_key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=uuid.UUID(row.id),
        name=row.name,
        prefix=row.prefix,
        key_hash=row.key_hash,
        created_at=from_epoch_ms(row.created_at),
        last_used_at=from_epoch_ms(row.last_used_at) if row.last_used_at is not None else None,
        revoked_at=from_epoch_ms(row.revoked_at) if row.revoked_at is not None else None,
    )


class SqlApiKeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, record: ApiKeyRecord) -> None:
        await self._conn.execute(
            insert(t.api_keys).values(
                id=str(record.id),
                name=record.name,
                prefix=record.prefix,
                key_hash=record.key_hash,
                created_at=epoch_ms(record.created_at),
                last_used_at=None,
                revoked_at=None,
            )
        )

    async def find_active_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        row = (
            await self._conn.execute(
                select(t.api_keys).where(
                    t.api_keys.c.key_hash == key_hash, t.api_keys.c.revoked_at.is_(None)
                )
            )
        ).first()
        return _api_key(row) if row else None

    async def list_all(self) -> list[ApiKeyRecord]:
        rows = (
            await self._conn.execute(select(t.api_keys).order_by(t.api_keys.c.created_at))
        ).all()
        return [_api_key(row) for row in rows]

    async def revoke(self, key_id: uuid.UUID, at: datetime) -> bool:
        result = await self._conn.execute(
            update(t.api_keys)
            .where(t.api_keys.c.id == str(key_id), t.api_keys.c.revoked_at.is_(None))
            .values(revoked_at=epoch_ms(at))
        )
        return bool(result.rowcount == 1)

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        await self._conn.execute(
            update(t.api_keys)
            .where(t.api_keys.c.id == str(key_id))
            .values(last_used_at=epoch_ms(at))
        )

    async def count_active(self) -> int:
        result = await self._conn.execute(
            select(func.count()).select_from(t.api_keys).where(t.api_keys.c.revoked_at.is_(None))
        )
        return int(result.scalar_one())


class SqlUnitOfWork:
    """One transaction. Writers on SQLite hold the store's write lock for its duration."""

    orders: SqlOrderRepository
    api_keys: SqlApiKeyRepository

    def __init__(self, store: SqlStore, *, read_only: bool) -> None:
        self._store = store
        self._read_only = read_only
        self._conn: AsyncConnection | None = None
        self._committed = False
        self._locked = False

    async def __aenter__(self) -> Self:
        lock = self._store.write_lock
        if lock is not None and not self._read_only:
            await lock.acquire()
            self._locked = True
        conn: AsyncConnection | None = None
        try:
            conn = await self._store.engine.connect()
            if not self._read_only:
                conn = await conn.execution_options(orderhub_write=True)
            await conn.begin()
        except BaseException as exc:
            # Whatever happened (a database error, a cancelled task), give back what was
            # taken: the connection and the write lock.
            try:
                if conn is not None:
                    await conn.close()
            finally:
                self._unlock()
            if isinstance(exc, SQLAlchemyError | OSError):
                raise StoreError("store unavailable") from exc
            raise
        self._conn = conn
        self.orders = SqlOrderRepository(conn, self._store.delivery_targets)
        self.api_keys = SqlApiKeyRepository(conn)
        return self

    @property
    def connection(self) -> AsyncConnection:
        """For repositories inside `store/sql` only."""
        assert self._conn is not None
        return self._conn

    async def commit(self) -> None:
        assert self._conn is not None
        await self._conn.commit()
        self._committed = True
        if self.orders.wrote_deliveries:
            self._store.outbox_signal.set()  # wake this process's worker at once

    async def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            try:
                if not self._committed:
                    await self.rollback()
            finally:
                if self._conn is not None:
                    await self._conn.close()
        finally:
            self._unlock()
        if isinstance(exc, SQLAlchemyError):
            # No SQL, parameters or driver names beyond the store: callers see StoreError.
            raise StoreError(f"store error: {type(exc).__name__}") from exc

    def _unlock(self) -> None:
        if self._locked and self._store.write_lock is not None:
            self._store.write_lock.release()
            self._locked = False


def _idempotency(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=row.scope,
        key=row.key,
        fingerprint=row.fingerprint,
        resource_id=uuid.UUID(row.resource_id),
        status_code=row.status_code,
        response_body=row.response_body,
        locked_until=from_epoch_ms(row.locked_until) if row.locked_until is not None else None,
        expires_at=from_epoch_ms(row.expires_at),
    )


class SqlIdempotencyRepository:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def claim(
        self, candidate: IdempotencyRecord, now: datetime
    ) -> tuple[bool, IdempotencyRecord]:
        c = t.idempotency_keys.c
        now_ms = epoch_ms(now)
        key_match = and_(c.scope == candidate.scope, c.key == candidate.key)
        values = {
            "fingerprint": candidate.fingerprint,
            "resource_id": str(candidate.resource_id),
            "status_code": None,
            "response_body": None,
            "locked_until": epoch_ms(candidate.locked_until) if candidate.locked_until else None,
            "expires_at": epoch_ms(candidate.expires_at),
        }
        for _attempt in range(5):
            async with self._store.unit_of_work() as uow:
                conn = uow.connection
                # An expired record is as good as none.
                await conn.execute(
                    delete(t.idempotency_keys).where(key_match, c.expires_at <= now_ms)
                )
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(t.idempotency_keys).values(
                                scope=candidate.scope, key=candidate.key, **values
                            )
                        )
                    claimed = True
                except IntegrityError:
                    # Take over an abandoned attempt of the same request (lock expired or
                    # released, no response kept), keeping its resource id.
                    result = await conn.execute(
                        update(t.idempotency_keys)
                        .where(
                            key_match,
                            c.fingerprint == candidate.fingerprint,
                            c.status_code.is_(None),
                            or_(c.locked_until.is_(None), c.locked_until <= now_ms),
                        )
                        .values(locked_until=values["locked_until"])
                    )
                    claimed = result.rowcount == 1
                row = (await conn.execute(select(t.idempotency_keys).where(key_match))).first()
                await uow.commit()
            if row is not None:
                return claimed, _idempotency(row)
            # The record was forgotten between our insert and our read: try again.
        raise StoreError("idempotency record kept changing")

    async def purge_expired(self, now: datetime) -> int:
        async with self._store.unit_of_work() as uow:
            result = await uow.connection.execute(
                delete(t.idempotency_keys).where(t.idempotency_keys.c.expires_at <= epoch_ms(now))
            )
            await uow.commit()
        return int(result.rowcount)

    async def complete(
        self, scope: str, key: str, status_code: int, body: bytes, expires_at: datetime
    ) -> None:
        c = t.idempotency_keys.c
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                update(t.idempotency_keys)
                .where(c.scope == scope, c.key == key)
                .values(
                    status_code=status_code,
                    response_body=body,
                    locked_until=None,
                    expires_at=epoch_ms(expires_at),
                )
            )
            await uow.commit()

    async def release(self, scope: str, key: str, *, forget: bool) -> None:
        c = t.idempotency_keys.c
        match = and_(c.scope == scope, c.key == key)
        async with self._store.unit_of_work() as uow:
            if forget:
                await uow.connection.execute(delete(t.idempotency_keys).where(match))
            else:
                await uow.connection.execute(
                    update(t.idempotency_keys).where(match).values(locked_until=None)
                )
            await uow.commit()


class SqlErrorLogRepository:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def record(self, entry: ErrorEntry) -> None:
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                insert(t.error_log).values(
                    id=str(entry.id),
                    at=epoch_ms(entry.at),
                    level=entry.level,
                    service=entry.service,
                    message=entry.message,
                    error=entry.error,
                    order_id=str(entry.order_id) if entry.order_id else None,
                )
            )
            await uow.commit()

    async def recent(self, limit: int, since: datetime) -> list[ErrorEntry]:
        c = t.error_log.c
        async with self._store.unit_of_work(read_only=True) as uow:
            rows = (
                await uow.connection.execute(
                    select(t.error_log)
                    .where(c.at >= epoch_ms(since))
                    .order_by(c.at.desc(), c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [
            ErrorEntry(
                id=uuid.UUID(row.id),
                at=from_epoch_ms(row.at),
                level=row.level,
                service=row.service,
                message=row.message,
                error=row.error,
                order_id=uuid.UUID(row.order_id) if row.order_id else None,
            )
            for row in rows
        ]


class SqlWebhookEventRepository:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def begin(self, event_id: str, event_type: str, now: datetime) -> bool:
        c = t.webhook_events.c
        async with self._store.unit_of_work() as uow:
            conn = uow.connection
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(t.webhook_events).values(
                            id=event_id, type=event_type, received_at=epoch_ms(now)
                        )
                    )
                fresh = True
            except IntegrityError:
                handled = (
                    await conn.execute(select(c.handled_at).where(c.id == event_id))
                ).scalar_one()
                fresh = handled is None
            await uow.commit()
        return fresh

    async def finish(self, event_id: str, outcome: str, error: str | None, now: datetime) -> None:
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                update(t.webhook_events)
                .where(t.webhook_events.c.id == event_id)
                .values(handled_at=epoch_ms(now), outcome=outcome, error=error)
            )
            await uow.commit()


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=uuid.UUID(row.id),
        event_id=uuid.UUID(row.event_id),
        event_type=EventType(row.type),
        order_id=uuid.UUID(row.order_id),
        integration=Integration(row.integration),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=from_epoch_ms(row.next_attempt_at),
        last_error=row.last_error,
        event_at=from_epoch_ms(row.event_at),
        created_at=from_epoch_ms(row.created_at),
        delivered_at=from_epoch_ms(row.delivered_at) if row.delivered_at is not None else None,
    )


def _delivery_query() -> Any:
    d, e = t.deliveries, t.order_events
    return select(d, e.c.type).join(e, e.c.id == d.c.event_id)


class SqlDeliveryRepository:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def claim_due(
        self,
        now: datetime,
        worker_id: str,
        lease_until: datetime,
        limit: int,
        give_up_before: datetime | None = None,
    ) -> list[DueDelivery]:
        d, e = t.deliveries, t.order_events
        now_ms = epoch_ms(now)
        due = or_(
            and_(d.c.status == DeliveryStatus.PENDING.value, d.c.next_attempt_at <= now_ms),
            and_(d.c.status == DeliveryStatus.IN_FLIGHT.value, d.c.lease_until <= now_ms),
        )
        async with self._store.unit_of_work() as uow:
            conn = uow.connection
            candidates = (
                await conn.execute(
                    select(d.c.id, d.c.status, d.c.lease_until, d.c.event_at)
                    .where(due)
                    .order_by(d.c.next_attempt_at, d.c.id)
                    .limit(limit)
                    # PostgreSQL: workers claiming at once each get other rows (SQLite has
                    # one writer at a time and ignores this)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            claimed: list[str] = []
            give_up_ms = epoch_ms(give_up_before) if give_up_before else None
            for candidate in candidates:
                values: dict[str, Any] = {
                    "status": DeliveryStatus.IN_FLIGHT.value,
                    "lease_owner": worker_id,
                    "lease_until": epoch_ms(lease_until),
                }
                lost = candidate.status == DeliveryStatus.IN_FLIGHT.value
                if lost:
                    # its last worker never finished it: that attempt counts
                    values["attempts"] = d.c.attempts + 1
                    values["last_error"] = "the previous attempt never finished (worker lost)"
                    if give_up_ms is not None and candidate.event_at < give_up_ms:
                        values.update(
                            status=DeliveryStatus.DEAD.value, lease_owner=None, lease_until=None
                        )
                # Conditional on what we saw: another worker that got there first wins.
                result = await conn.execute(
                    update(d)
                    .where(
                        d.c.id == candidate.id,
                        d.c.status == candidate.status,
                        d.c.lease_until.is_(None)
                        if candidate.lease_until is None
                        else d.c.lease_until == candidate.lease_until,
                    )
                    .values(**values)
                )
                if result.rowcount == 1 and values["status"] == DeliveryStatus.IN_FLIGHT.value:
                    claimed.append(candidate.id)
            rows = (
                (
                    await conn.execute(
                        select(
                            d,
                            e.c.type,
                            e.c.at,
                            e.c.status.label("event_status"),
                            e.c.payment_status,
                            e.c.source,
                            e.c.order_document,
                            e.c.order_version,
                        )
                        .join(e, e.c.id == d.c.event_id)
                        .where(d.c.id.in_(claimed))
                        .order_by(d.c.next_attempt_at, d.c.id)
                    )
                ).all()
                if claimed
                else []
            )
            await uow.commit()
        return [
            DueDelivery(
                delivery=_delivery(row),
                event=OrderEvent(
                    id=uuid.UUID(row.event_id),
                    order_id=uuid.UUID(row.order_id),
                    type=EventType(row.type),
                    at=from_epoch_ms(row.at),
                    status=OrderStatus(row.event_status),
                    payment_status=PaymentStatus(row.payment_status),
                    source=EventSource(row.source),
                ),
                order_document=row.order_document,
                order_version=row.order_version,
            )
            for row in rows
        ]

    async def _finish(
        self,
        delivery_id: uuid.UUID,
        worker_id: str,
        values: dict[str, Any],
        attempt: dict[str, Any],
    ) -> bool:
        d = t.deliveries
        async with self._store.unit_of_work() as uow:
            result = await uow.connection.execute(
                update(d)
                .where(
                    d.c.id == str(delivery_id),
                    d.c.status == DeliveryStatus.IN_FLIGHT.value,
                    d.c.lease_owner == worker_id,
                )
                .values(**values)
            )
            integration = (
                await uow.connection.execute(
                    select(d.c.integration).where(d.c.id == str(delivery_id))
                )
            ).scalar_one_or_none()
            await uow.connection.execute(
                insert(t.delivery_attempts).values(
                    id=str(new_id()),
                    delivery_id=str(delivery_id),
                    integration=integration or "",
                    **attempt,
                )
            )
            name = integration or ""
            failed = 0 if attempt["outcome"] == "delivered" else 1
            await _bump(
                uow.connection, _hour(attempt["at"]), {f"calls:{name}": 1, f"errors:{name}": failed}
            )
            await uow.commit()
        return bool(result.rowcount == 1)

    async def complete(
        self, delivery_id: uuid.UUID, worker_id: str, now: datetime, duration_ms: int
    ) -> bool:
        return await self._finish(
            delivery_id,
            worker_id,
            {
                "status": DeliveryStatus.DELIVERED.value,
                "attempts": t.deliveries.c.attempts + 1,
                "delivered_at": epoch_ms(now),
                "lease_owner": None,
                "lease_until": None,
                "last_error": None,
            },
            {
                "outcome": "delivered",
                "duration_ms": duration_ms,
                "error": None,
                "at": epoch_ms(now),
            },
        )

    async def fail(
        self,
        delivery_id: uuid.UUID,
        worker_id: str,
        now: datetime,
        duration_ms: int,
        error: str,
        retry_at: datetime | None,
    ) -> bool:
        dead = retry_at is None
        return await self._finish(
            delivery_id,
            worker_id,
            {
                "status": (DeliveryStatus.DEAD if dead else DeliveryStatus.PENDING).value,
                "attempts": t.deliveries.c.attempts + 1,
                "next_attempt_at": epoch_ms(retry_at)
                if retry_at
                else t.deliveries.c.next_attempt_at,
                "lease_owner": None,
                "lease_until": None,
                "last_error": error[:2000],
            },
            {
                "outcome": "dead" if dead else "failed",
                "duration_ms": duration_ms,
                "error": error[:2000],
                "at": epoch_ms(now),
            },
        )

    async def release(self, delivery_ids: list[uuid.UUID], worker_id: str) -> None:
        if not delivery_ids:
            return
        d = t.deliveries
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                update(d)
                .where(
                    d.c.id.in_([str(i) for i in delivery_ids]),
                    d.c.status == DeliveryStatus.IN_FLIGHT.value,
                    d.c.lease_owner == worker_id,
                )
                .values(status=DeliveryStatus.PENDING.value, lease_owner=None, lease_until=None)
            )
            await uow.commit()

    async def renew(
        self, delivery_ids: list[uuid.UUID], worker_id: str, lease_until: datetime
    ) -> set[uuid.UUID]:
        if not delivery_ids:
            return set()
        d = t.deliveries
        ours = and_(
            d.c.id.in_([str(i) for i in delivery_ids]),
            d.c.status == DeliveryStatus.IN_FLIGHT.value,
            d.c.lease_owner == worker_id,
        )
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                update(d).where(ours).values(lease_until=epoch_ms(lease_until))
            )
            kept = (await uow.connection.execute(select(d.c.id).where(ours))).scalars().all()
            await uow.commit()
        return {uuid.UUID(i) for i in kept}

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None:
        async with self._store.unit_of_work(read_only=True) as uow:
            row = (
                await uow.connection.execute(
                    _delivery_query().where(t.deliveries.c.id == str(delivery_id))
                )
            ).first()
        return _delivery(row) if row else None

    async def list_page(
        self, delivery_filter: DeliveryFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Delivery]:
        d = t.deliveries
        query = _delivery_query()
        if delivery_filter.status is not None:
            query = query.where(d.c.status == delivery_filter.status.value)
        if delivery_filter.order_id is not None:
            query = query.where(d.c.order_id == str(delivery_filter.order_id))
        if delivery_filter.integration is not None:
            query = query.where(d.c.integration == delivery_filter.integration.value)
        if before_id is not None:
            query = query.where(d.c.id < str(before_id))
        query = query.order_by(d.c.id.desc()).limit(limit)
        async with self._store.unit_of_work(read_only=True) as uow:
            rows = (await uow.connection.execute(query)).all()
        return [_delivery(row) for row in rows]

    async def retry_dead(self, delivery_id: uuid.UUID, now: datetime) -> bool:
        d = t.deliveries
        async with self._store.unit_of_work() as uow:
            result = await uow.connection.execute(
                update(d)
                .where(d.c.id == str(delivery_id), d.c.status == DeliveryStatus.DEAD.value)
                .values(
                    status=DeliveryStatus.PENDING.value,
                    next_attempt_at=epoch_ms(now),
                    # a fresh start: the age limit and the backoff count from the retry
                    event_at=epoch_ms(now),
                    attempts=0,
                )
            )
            await uow.commit()
        return bool(result.rowcount == 1)

    async def acquire_lease(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        lease = t.leases.c
        async with self._store.unit_of_work() as uow:
            conn = uow.connection
            taken = await conn.execute(
                update(t.leases)
                .where(
                    lease.name == name,
                    or_(lease.owner == owner, lease.until <= epoch_ms(now)),
                )
                .values(owner=owner, until=epoch_ms(until))
            )
            acquired = taken.rowcount == 1
            if not acquired:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(t.leases).values(name=name, owner=owner, until=epoch_ms(until))
                        )
                    acquired = True
                except IntegrityError:
                    acquired = False  # held by someone else
            await uow.commit()
        return acquired

    async def release_lease(self, name: str, owner: str) -> None:
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                delete(t.leases).where(t.leases.c.name == name, t.leases.c.owner == owner)
            )
            await uow.commit()

    async def next_due_at(self) -> datetime | None:
        d = t.deliveries
        async with self._store.unit_of_work(read_only=True) as uow:
            value = (
                await uow.connection.execute(
                    select(func.min(d.c.next_attempt_at)).where(
                        d.c.status == DeliveryStatus.PENDING.value
                    )
                )
            ).scalar_one_or_none()
        return from_epoch_ms(value) if value is not None else None


HOUR_MS = 3_600_000


def _hour(ms: int) -> int:
    return ms - ms % HOUR_MS


def _split_hours(start_ms: int, end_ms: int) -> list[tuple[int, int, bool]]:
    """[start, end) as (lo, hi, whole-hours?) pieces: a partial hour at each end, whole
    hours between them."""
    first = -(-start_ms // HOUR_MS) * HOUR_MS  # the first hour boundary at or after start
    last = _hour(end_ms)
    if first >= last:
        return [(start_ms, end_ms, False)] if start_ms < end_ms else []
    pieces = [(start_ms, first, False), (first, last, True), (last, end_ms, False)]
    return [(lo, hi, whole) for lo, hi, whole in pieces if lo < hi]


def _order_bucket(paid_at: int | None, status: str, payment_status: str) -> str:
    """SPEC §11's buckets: each order in exactly one."""
    if paid_at is not None:
        return "successful"
    if status == "cancelled":
        return "cancelled"
    if payment_status == "failed":
        return "failed"
    return "pending"


def _order_contribution(row: Any) -> dict[str, int]:
    """What one order adds to the rollup of the hour it was created in."""
    values: Mapping[str, Any] = row if isinstance(row, dict) else row._mapping
    bucket = _order_bucket(values["paid_at"], values["status"], values["payment_status"])
    currency = values["currency"]
    contribution = {f"orders:{bucket}:{currency}": 1}
    if values["paid_at"] is not None:
        contribution[f"revenue:{currency}"] = values["total_minor"] - values["refunded_minor"]
    return contribution


async def _bump(conn: AsyncConnection, hour: int, deltas: dict[str, int]) -> None:
    """Add `deltas` to the hour's rollups (insert or increment), in a fixed order so that
    concurrent writers lock rows in the same order."""
    rows = [
        {"hour": hour, "metric": metric, "value": value}
        for metric, value in sorted(deltas.items())
        if value != 0
    ]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert_pg

        pg = upsert_pg(t.hourly_stats).values(rows)
        statement: Any = pg.on_conflict_do_update(
            index_elements=["hour", "metric"],
            set_={"value": t.hourly_stats.c.value + pg.excluded.value},
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert_sqlite

        lite = upsert_sqlite(t.hourly_stats).values(rows)
        statement = lite.on_conflict_do_update(
            index_elements=["hour", "metric"],
            set_={"value": t.hourly_stats.c.value + lite.excluded.value},
        )
    await conn.execute(statement)


async def _stats(
    conn: AsyncConnection, lo: int, hi: int, prefixes: tuple[str, ...]
) -> dict[str, int]:
    h = t.hourly_stats.c
    rows = (
        await conn.execute(
            select(h.metric, func.sum(h.value).label("value"))
            .where(h.hour >= lo, h.hour < hi, or_(*(h.metric.startswith(p) for p in prefixes)))
            .group_by(h.metric)
        )
    ).all()
    return {row.metric: int(row.value) for row in rows}


_ORDER_STATS_COLUMNS = (
    "created_at",
    "paid_at",
    "status",
    "payment_status",
    "currency",
    "total_minor",
    "refunded_minor",
)


async def _raw_order_stats(conn: AsyncConnection, lo: int, hi: int) -> dict[str, int]:
    o = t.orders.c
    rows = (
        await conn.execute(
            select(*(o[name] for name in _ORDER_STATS_COLUMNS)).where(
                o.created_at >= lo, o.created_at < hi
            )
        )
    ).all()
    totals: dict[str, int] = {}
    for row in rows:
        for metric, value in _order_contribution(row).items():
            totals[metric] = totals.get(metric, 0) + value
    return totals


async def _raw_call_stats(conn: AsyncConnection, lo: int, hi: int) -> dict[str, int]:
    c, a = t.provider_calls.c, t.delivery_attempts.c
    totals: dict[str, int] = {}
    queries = (
        select(c.provider.label("name"), c.ok.label("ok")).where(c.at >= lo, c.at < hi),
        select(a.integration.label("name"), (a.outcome == "delivered").label("ok")).where(
            a.at >= lo, a.at < hi
        ),
    )
    for query in queries:
        for row in (await conn.execute(query)).all():
            totals[f"calls:{row.name}"] = totals.get(f"calls:{row.name}", 0) + 1
            if not row.ok:
                totals[f"errors:{row.name}"] = totals.get(f"errors:{row.name}", 0) + 1
    return totals


class SqlMonitoringRepository:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def record_probes(self, results: list[ProbeResult]) -> None:
        if not results:
            return
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                insert(t.probe_results),
                [
                    {
                        "id": str(new_id()),
                        "name": r.name,
                        "at": epoch_ms(r.at),
                        "ok": r.ok,
                        "latency_ms": r.latency_ms,
                        "error": r.error,
                    }
                    for r in results
                ],
            )
            await uow.commit()

    async def probe_summaries(self, since: datetime) -> list[ProbeSummary]:
        p = t.probe_results.c
        since_ms = epoch_ms(since)
        async with self._store.unit_of_work(read_only=True) as uow:
            conn = uow.connection
            counts = (
                await conn.execute(
                    select(
                        p.name,
                        func.count().label("checks"),
                        func.sum(case((p.ok, 1), else_=0)).label("successes"),
                        func.max(p.at).label("last_at"),
                    )
                    .where(p.at >= since_ms)
                    .group_by(p.name)
                )
            ).all()
            summaries = []
            for row in counts:
                last_ok = (
                    await conn.execute(
                        select(p.ok)
                        .where(p.name == row.name, p.at == row.last_at)
                        .order_by(p.id.desc())
                        .limit(1)
                    )
                ).scalar_one()
                summaries.append(
                    ProbeSummary(
                        name=row.name,
                        checks=int(row.checks),
                        successes=int(row.successes or 0),
                        last_at=from_epoch_ms(row.last_at),
                        last_ok=bool(last_ok),
                    )
                )
        return summaries

    async def record_provider_call(
        self, provider: str, operation: str, ok: bool, duration_ms: int, at: datetime
    ) -> None:
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                insert(t.provider_calls).values(
                    id=str(new_id()),
                    provider=provider,
                    operation=operation,
                    ok=ok,
                    duration_ms=duration_ms,
                    at=epoch_ms(at),
                )
            )
            await _bump(
                uow.connection,
                _hour(epoch_ms(at)),
                {f"calls:{provider}": 1, f"errors:{provider}": 0 if ok else 1},
            )
            await uow.commit()

    async def _range_totals(
        self,
        start: datetime,
        end: datetime,
        prefixes: tuple[str, ...],
        raw: Callable[[AsyncConnection, int, int], Awaitable[dict[str, int]]],
    ) -> dict[str, int]:
        """Metric totals over [start, end): whole hours from the rollups, the partial hours
        at both ends from the raw rows (`raw`)."""
        totals: dict[str, int] = {}
        async with self._store.unit_of_work(read_only=True) as uow:
            conn = uow.connection
            for lo, hi, whole in _split_hours(epoch_ms(start), epoch_ms(end)):
                part = await _stats(conn, lo, hi, prefixes) if whole else await raw(conn, lo, hi)
                for metric, value in part.items():
                    totals[metric] = totals.get(metric, 0) + value
        return totals

    async def order_buckets(self, start: datetime, end: datetime) -> OrderBuckets:
        """Whole hours from the rollups, the partial hours at both ends from the orders
        (a few index-ranged rows): the cost does not grow with the number of orders."""
        totals = await self._range_totals(start, end, ("orders:", "revenue:"), _raw_order_stats)
        counts: dict[str, int] = {}
        revenue: dict[str, int] = {}
        for metric, value in totals.items():
            kind, _, rest = metric.partition(":")
            if kind == "orders":
                bucket = rest.split(":", 1)[0]
                counts[bucket] = counts.get(bucket, 0) + value
            elif kind == "revenue":
                revenue[rest] = revenue.get(rest, 0) + value
        return OrderBuckets(
            successful=counts.get("successful", 0),
            failed=counts.get("failed", 0),
            pending=counts.get("pending", 0),
            cancelled=counts.get("cancelled", 0),
            revenue_minor={currency: net for currency, net in revenue.items()},
        )

    async def call_counts(self, start: datetime, end: datetime) -> dict[str, CallCounts]:
        totals = await self._range_totals(start, end, ("calls:", "errors:"), _raw_call_stats)
        names = {metric.partition(":")[2] for metric in totals}
        return {
            name: CallCounts(totals.get(f"calls:{name}", 0), totals.get(f"errors:{name}", 0))
            for name in names
        }

    async def orders_by_status(self) -> dict[str, int]:
        o = t.orders.c
        async with self._store.unit_of_work(read_only=True) as uow:
            rows = (
                await uow.connection.execute(
                    select(o.status, func.count().label("n")).group_by(o.status)
                )
            ).all()
        return {row.status: int(row.n) for row in rows}

    async def outbox_backlog(self, now: datetime) -> tuple[int, float]:
        d = t.deliveries.c
        waiting = d.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.IN_FLIGHT.value])
        async with self._store.unit_of_work(read_only=True) as uow:
            row = (
                await uow.connection.execute(
                    select(func.count().label("n"), func.min(d.created_at).label("oldest")).where(
                        waiting
                    )
                )
            ).one()
        age = (epoch_ms(now) - row.oldest) / 1000 if row.oldest is not None else 0.0
        return int(row.n), max(0.0, age)

    async def prune(self, probes_before: datetime, errors_before: datetime) -> None:
        async with self._store.unit_of_work() as uow:
            await uow.connection.execute(
                delete(t.probe_results).where(t.probe_results.c.at < epoch_ms(probes_before))
            )
            await uow.connection.execute(
                delete(t.error_log).where(t.error_log.c.at < epoch_ms(errors_before))
            )
            await uow.commit()


class SqlStore:
    def __init__(
        self, database_url: str, delivery_targets: DeliveryTargets = lambda _event: []
    ) -> None:
        self.database_url = database_url
        self.delivery_targets = delivery_targets
        self.is_sqlite = database_url.startswith("sqlite:///")
        if self.is_sqlite:
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_async_engine(
            async_url(database_url), pool_pre_ping=not self.is_sqlite, hide_parameters=True
        )
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        # SQLite has one writer at a time; queueing writers here (rather than letting them
        # collide on the file lock) means no unit of work ever sees "database is locked".
        self.write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self.idempotency = SqlIdempotencyRepository(self)
        self.errors = SqlErrorLogRepository(self)
        self.webhook_events = SqlWebhookEventRepository(self)
        self.deliveries = SqlDeliveryRepository(self)
        self.monitoring = SqlMonitoringRepository(self)
        # Set when a commit wrote deliveries; the in-process worker waits on it.
        self.outbox_signal = asyncio.Event()

    def unit_of_work(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self, read_only=read_only)

    async def server_secret(self, name: str) -> bytes:
        async with self.unit_of_work(read_only=True) as uow:
            value = (
                await uow.connection.execute(
                    select(t.server_secrets.c.value).where(t.server_secrets.c.name == name)
                )
            ).scalar_one_or_none()
        if value is None:
            fresh = base64.b64encode(secrets.token_bytes(32)).decode()
            async with self.unit_of_work() as uow:
                try:
                    async with uow.connection.begin_nested():
                        await uow.connection.execute(
                            insert(t.server_secrets).values(name=name, value=fresh)
                        )
                except IntegrityError:
                    pass  # another instance made it first; read theirs below
                value = (
                    await uow.connection.execute(
                        select(t.server_secrets.c.value).where(t.server_secrets.c.name == name)
                    )
                ).scalar_one()
                await uow.commit()
        return base64.b64decode(value)

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(func.count()).select_from(t.server_secrets))
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            raise StoreError("store did not answer") from exc

    async def close(self) -> None:
        await self.engine.dispose()
