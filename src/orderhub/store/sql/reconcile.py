"""Reconciliation runs in SQL: one row per run, by start time."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.store.protocol import ReconcileRun
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import SqlEngine

_R = t.reconcile_runs


def _run_of(row: Any) -> ReconcileRun:
    return ReconcileRun(
        id=uuid.UUID(row.id),
        started_at=from_epoch_ms(row.started_at),
        finished_at=from_epoch_ms(row.finished_at),
        checked=row.checked,
        changed=row.changed,
        errors=row.errors,
        error=row.error,
        checkpoint=from_epoch_ms(row.checkpoint) if row.checkpoint is not None else None,
    )


class SqlReconcileRunRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def record(self, run: ReconcileRun) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                insert(_R).values(
                    id=str(run.id),
                    started_at=epoch_ms(run.started_at),
                    finished_at=epoch_ms(run.finished_at),
                    checked=run.checked,
                    changed=run.changed,
                    errors=run.errors,
                    error=run.error,
                    checkpoint=epoch_ms(run.checkpoint) if run.checkpoint else None,
                )
            )

    async def latest(self) -> ReconcileRun | None:
        runs = await self._newest_first(None, 1)
        return runs[0] if runs else None

    async def recent(self, since: datetime, limit: int) -> list[ReconcileRun]:
        return await self._newest_first(since, limit)

    async def _newest_first(self, since: datetime | None, limit: int) -> list[ReconcileRun]:
        c = _R.c
        query = select(_R).order_by(c.started_at.desc(), c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(c.started_at >= epoch_ms(since))
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_run_of(row) for row in rows]

    async def prune(self, before: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(_R).where(_R.c.started_at < epoch_ms(before)))
