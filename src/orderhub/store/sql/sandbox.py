"""The sandbox provider's intents and refunds in SQL: one row per intent (guarded by its
version), one per refund (unique per intent and idempotency key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from orderhub.store.fields import record_from, text_map, values_of
from orderhub.store.protocol import (
    AlreadyExists,
    ConcurrencyConflict,
    SandboxIntent,
    SandboxRefund,
)
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import Prepared, PreparedWrite, SqlEngine


def _intent_row(intent: SandboxIntent) -> dict[str, Any]:
    return {**values_of(intent), "metadata": dict(intent.metadata)}


def _column(row: Any) -> Callable[[str, str], Any]:
    def value(name: str, kind: str) -> Any:
        found = getattr(row, name)
        if kind == "int":
            return int(found)
        return text_map(found) if name == "metadata" else found

    return value


def _intent_of(row: Any) -> SandboxIntent:
    return record_from(SandboxIntent, _column(row))


def _refund_of(row: Any) -> SandboxRefund:
    return record_from(SandboxRefund, _column(row))


# the reads and the write of every new order's intent, built once
_BY_KEY = Prepared(
    select(t.sandbox_intents).where(t.sandbox_intents.c.idempotency_key == bindparam("key"))
)
_INSERT_INTENT = PreparedWrite(insert(t.sandbox_intents))


class SqlSandboxRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def get_intent(self, intent_id: str) -> SandboxIntent | None:
        c = t.sandbox_intents.c
        row = await self._db.first_row(select(t.sandbox_intents).where(c.id == intent_id))
        return _intent_of(row) if row else None

    async def intent_for_key(self, idempotency_key: str) -> SandboxIntent | None:
        [rows] = await self._db.fetch([(_BY_KEY, {"key": idempotency_key})])
        return _intent_of(rows[0]) if rows else None

    async def put_intent(self, intent: SandboxIntent, expected_version: int | None) -> None:
        async with self._db.write() as conn:
            if expected_version is None:
                # no savepoint: AlreadyExists ends (and rolls back) the whole write
                try:
                    await conn.run(_INSERT_INTENT, [_intent_row(intent)])
                except IntegrityError:
                    raise AlreadyExists(intent.id) from None
                return
            await self._replace(conn, intent, expected_version)

    async def _replace(self, conn: Any, intent: SandboxIntent, expected_version: int) -> None:
        c = t.sandbox_intents.c
        row = _intent_row(intent)
        for fixed in ("id", "idempotency_key", "client_secret", "created"):
            row.pop(fixed)
        result = await conn.execute(
            update(t.sandbox_intents)
            .where(c.id == intent.id, c.version == expected_version)
            .values(**row)
        )
        if result.rowcount != 1:
            raise ConcurrencyConflict(intent.id)

    async def add_refund(
        self, refund: SandboxRefund, intent: SandboxIntent, expected_version: int
    ) -> None:
        async with self._db.write() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(t.sandbox_refunds).values(**values_of(refund)))
            except IntegrityError:
                raise AlreadyExists(refund.idempotency_key) from None
            await self._replace(conn, intent, expected_version)

    async def get_refund(self, intent_id: str, idempotency_key: str) -> SandboxRefund | None:
        c = t.sandbox_refunds.c
        row = await self._db.first_row(
            select(t.sandbox_refunds).where(
                c.intent_id == intent_id, c.idempotency_key == idempotency_key
            )
        )
        return _refund_of(row) if row else None

    async def list_refunds(self, intent_id: str) -> list[SandboxRefund]:
        c = t.sandbox_refunds.c
        rows = await self._db.rows(
            select(t.sandbox_refunds).where(c.intent_id == intent_id).order_by(c.created, c.id)
        )
        return [_refund_of(row) for row in rows]
