"""Alerts in SQL: one row each, due ones by the (status, next attempt) index."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from orderhub.kit.clock import epoch_ms
from orderhub.store.protocol import Alert
from orderhub.store.runs import record_of, record_values
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import SqlEngine

_A = t.alerts


class SqlAlertRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def add(self, alerts: list[Alert]) -> None:
        if alerts:
            async with self._db.write() as conn:
                await conn.execute(insert(_A), [record_values(a) for a in alerts])

    async def due(self, now: datetime, limit: int) -> list[Alert]:
        c = _A.c
        query = (
            select(_A)
            .where(c.status == "pending", c.next_attempt_at <= epoch_ms(now))
            .order_by(c.next_attempt_at, c.id)
            .limit(limit)
        )
        rows = await self._db.rows(query)
        return [record_of(Alert, dict(row._mapping)) for row in rows]

    async def save(self, alert: Alert) -> None:
        values = record_values(alert)
        async with self._db.write() as conn:
            await conn.execute(update(_A).where(_A.c.id == values.pop("id")).values(values))
