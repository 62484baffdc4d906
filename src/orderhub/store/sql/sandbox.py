"""The sandbox provider's intents and refunds in SQL: one row per intent (guarded by its
version), one per refund (unique per intent and idempotency key)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from orderhub.store.protocol import (
    AlreadyExists,
    ConcurrencyConflict,
    SandboxIntent,
    SandboxRefund,
)
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import SqlEngine


def _intent_row(intent: SandboxIntent) -> dict[str, Any]:
    return {
        "id": intent.id,
        "idempotency_key": intent.idempotency_key,
        "client_secret": intent.client_secret,
        "amount": intent.amount,
        "currency": intent.currency,
        "status": intent.status,
        "created": intent.created,
        "metadata": dict(intent.metadata),
        "refunded": intent.refunded,
        "latest_charge": intent.latest_charge,
        "payment_method": intent.payment_method,
        "next_action": intent.next_action,
        "last_error": intent.last_error,
        "version": intent.version,
    }


def _intent_of(row: Any) -> SandboxIntent:
    return SandboxIntent(
        id=row.id,
        client_secret=row.client_secret,
        idempotency_key=row.idempotency_key,
        amount=int(row.amount),
        currency=row.currency,
        status=row.status,
        created=int(row.created),
        metadata={str(k): str(v) for k, v in (row.metadata or {}).items()},
        refunded=int(row.refunded),
        latest_charge=row.latest_charge,
        payment_method=row.payment_method,
        next_action=row.next_action,
        last_error=row.last_error,
        version=int(row.version),
    )


def _refund_of(row: Any) -> SandboxRefund:
    return SandboxRefund(
        id=row.id,
        intent_id=row.intent_id,
        idempotency_key=row.idempotency_key,
        amount=int(row.amount),
        currency=row.currency,
        status=row.status,
        reason=row.reason,
        created=int(row.created),
    )


class SqlSandboxRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def get_intent(self, intent_id: str) -> SandboxIntent | None:
        c = t.sandbox_intents.c
        async with self._db.read() as conn:
            row = (await conn.execute(select(t.sandbox_intents).where(c.id == intent_id))).first()
        return _intent_of(row) if row else None

    async def intent_for_key(self, idempotency_key: str) -> SandboxIntent | None:
        c = t.sandbox_intents.c
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(t.sandbox_intents).where(c.idempotency_key == idempotency_key)
                )
            ).first()
        return _intent_of(row) if row else None

    async def put_intent(self, intent: SandboxIntent, expected_version: int | None) -> None:
        async with self._db.write() as conn:
            if expected_version is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(t.sandbox_intents).values(**_intent_row(intent)))
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
                    await conn.execute(
                        insert(t.sandbox_refunds).values(
                            id=refund.id,
                            intent_id=refund.intent_id,
                            idempotency_key=refund.idempotency_key,
                            amount=refund.amount,
                            currency=refund.currency,
                            status=refund.status,
                            reason=refund.reason,
                            created=refund.created,
                        )
                    )
            except IntegrityError:
                raise AlreadyExists(refund.idempotency_key) from None
            await self._replace(conn, intent, expected_version)

    async def get_refund(self, intent_id: str, idempotency_key: str) -> SandboxRefund | None:
        c = t.sandbox_refunds.c
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(t.sandbox_refunds).where(
                        c.intent_id == intent_id, c.idempotency_key == idempotency_key
                    )
                )
            ).first()
        return _refund_of(row) if row else None

    async def list_refunds(self, intent_id: str) -> list[SandboxRefund]:
        c = t.sandbox_refunds.c
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(t.sandbox_refunds)
                    .where(c.intent_id == intent_id)
                    .order_by(c.created, c.id)
                )
            ).all()
        return [_refund_of(row) for row in rows]
