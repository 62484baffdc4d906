"""Reconciliation runs in SQL: one row per run, by start time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select

from orderhub.kit.clock import epoch_ms
from orderhub.store.protocol import ReconcileRun
from orderhub.store.runs import ReconcileRunsBase, record_of, record_values
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import SqlEngine

_R = t.reconcile_runs


class SqlReconcileRunRepository(ReconcileRunsBase):
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def record(self, run: ReconcileRun) -> None:
        async with self._db.write() as conn:
            await conn.execute(insert(_R).values(record_values(run)))

    async def _newest_first(self, since: datetime | None, limit: int) -> list[ReconcileRun]:
        c = _R.c
        query = select(_R).order_by(c.started_at.desc(), c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(c.started_at >= epoch_ms(since))
        rows = await self._db.rows(query)
        return [record_of(ReconcileRun, dict(row._mapping)) for row in rows]

    async def prune(self, before: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(_R).where(_R.c.started_at < epoch_ms(before)))
