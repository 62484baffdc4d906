"""Single-record repositories in SQL: API keys, idempotency keys, webhook event ids,
named leases, the error log. Each operation is one short transaction of its own."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from orderhub.kit.clock import epoch_ms
from orderhub.store.mapping import (
    api_key_from,
    error_entry_from,
    idempotency_from,
)
from orderhub.store.protocol import ApiKeyRecord, ErrorEntry, IdempotencyRecord, StoreError
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import SqlEngine


class SqlApiKeyRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def add(self, record: ApiKeyRecord) -> None:
        async with self._db.write() as conn:
            await conn.execute(
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
        k = t.api_keys.c
        row = await self._db.first_row(
            select(t.api_keys).where(k.key_hash == key_hash, k.revoked_at.is_(None))
        )
        return api_key_from(row._mapping) if row else None

    async def list_all(self) -> list[ApiKeyRecord]:
        rows = await self._db.rows(select(t.api_keys).order_by(t.api_keys.c.created_at))
        return [api_key_from(row._mapping) for row in rows]

    async def revoke(self, key_id: uuid.UUID, at: datetime) -> bool:
        k = t.api_keys.c
        async with self._db.write() as conn:
            result = await conn.execute(
                update(t.api_keys)
                .where(k.id == str(key_id), k.revoked_at.is_(None))
                .values(revoked_at=epoch_ms(at))
            )
        return bool(result.rowcount == 1)

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(t.api_keys)
                .where(t.api_keys.c.id == str(key_id))
                .values(last_used_at=epoch_ms(at))
            )

    async def count_active(self) -> int:
        async with self._db.read() as conn:
            result = await conn.execute(
                select(func.count())
                .select_from(t.api_keys)
                .where(t.api_keys.c.revoked_at.is_(None))
            )
            return int(result.scalar_one())


class SqlIdempotencyRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

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
            async with self._db.write() as conn:
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
            if row is not None:
                return claimed, idempotency_from(row._mapping)
            # The record was forgotten between our insert and our read: try again.
        raise StoreError("idempotency record kept changing")

    async def purge_expired(self, now: datetime) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(t.idempotency_keys).where(t.idempotency_keys.c.expires_at <= epoch_ms(now))
            )
        return int(result.rowcount)

    async def complete(
        self, scope: str, key: str, status_code: int, body: bytes, expires_at: datetime
    ) -> None:
        c = t.idempotency_keys.c
        async with self._db.write() as conn:
            await conn.execute(
                update(t.idempotency_keys)
                .where(c.scope == scope, c.key == key)
                .values(
                    status_code=status_code,
                    response_body=body,
                    locked_until=None,
                    expires_at=epoch_ms(expires_at),
                )
            )

    async def release(self, scope: str, key: str, *, forget: bool) -> None:
        c = t.idempotency_keys.c
        match = and_(c.scope == scope, c.key == key)
        async with self._db.write() as conn:
            if forget:
                await conn.execute(delete(t.idempotency_keys).where(match))
            else:
                await conn.execute(
                    update(t.idempotency_keys).where(match).values(locked_until=None)
                )


class SqlErrorLogRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def record(self, entry: ErrorEntry) -> None:
        async with self._db.write() as conn:
            await conn.execute(
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

    async def recent(self, limit: int, since: datetime) -> list[ErrorEntry]:
        c = t.error_log.c
        rows = await self._db.rows(
            select(t.error_log)
            .where(c.at >= epoch_ms(since))
            .order_by(c.at.desc(), c.id.desc())
            .limit(limit)
        )
        return [error_entry_from(row._mapping) for row in rows]


class SqlWebhookEventRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def begin(self, event_id: str, event_type: str, now: datetime) -> bool:
        c = t.webhook_events.c
        async with self._db.write() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(t.webhook_events).values(
                            id=event_id, type=event_type, received_at=epoch_ms(now)
                        )
                    )
                return True
            except IntegrityError:
                handled = (
                    await conn.execute(select(c.handled_at).where(c.id == event_id))
                ).scalar_one()
                return handled is None

    async def finish(self, event_id: str, outcome: str, error: str | None, now: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(t.webhook_events)
                .where(t.webhook_events.c.id == event_id)
                .values(handled_at=epoch_ms(now), outcome=outcome, error=error)
            )


class SqlLeaseRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def acquire(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        lease = t.leases.c
        async with self._db.write() as conn:
            taken = await conn.execute(
                update(t.leases)
                .where(lease.name == name, or_(lease.owner == owner, lease.until <= epoch_ms(now)))
                .values(owner=owner, until=epoch_ms(until))
            )
            if taken.rowcount == 1:
                return True
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(t.leases).values(name=name, owner=owner, until=epoch_ms(until))
                    )
            except IntegrityError:
                return False  # held by someone else
            return True

    async def release(self, name: str, owner: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                delete(t.leases).where(t.leases.c.name == name, t.leases.c.owner == owner)
            )
