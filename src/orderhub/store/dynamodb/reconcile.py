"""Reconciliation runs in DynamoDB: one partition (`RECONCILE`, a run every few minutes),
sorted by start time, expired by TTL after 30 days."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import DynamoEngine
from orderhub.store.dynamodb.mappers import Item, av, item_of, ms, values
from orderhub.store.protocol import ReconcileRun


def _item(run: ReconcileRun) -> Item:
    started = epoch_ms(run.started_at)
    return item_of(
        pk=t.RECONCILE_PK,
        sk=f"{t.padded(started)}#{run.id}",
        id=str(run.id),
        started_at=started,
        finished_at=epoch_ms(run.finished_at),
        checked=run.checked,
        changed=run.changed,
        errors=run.errors,
        error=run.error,
        checkpoint=ms(run.checkpoint),
        expires=t.ttl_seconds(run.started_at + t.RECONCILE_RUNS_KEPT),
    )


def _run_of(item: Item) -> ReconcileRun:
    v = values(item)
    return ReconcileRun(
        id=uuid.UUID(v["id"]),
        started_at=from_epoch_ms(v["started_at"]),
        finished_at=from_epoch_ms(v["finished_at"]),
        checked=v["checked"],
        changed=v["changed"],
        errors=v["errors"],
        error=v.get("error"),
        checkpoint=from_epoch_ms(v["checkpoint"]) if "checkpoint" in v else None,
    )


class DynamoReconcileRunRepository:
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def record(self, run: ReconcileRun) -> None:
        await self._db.call("put_item", TableName=self._db.name, Item=_item(run))

    async def latest(self) -> ReconcileRun | None:
        runs = await self._newest_first(None, 1)
        return runs[0] if runs else None

    async def recent(self, since: datetime, limit: int) -> list[ReconcileRun]:
        return await self._newest_first(since, limit)

    async def _newest_first(self, since: datetime | None, limit: int) -> list[ReconcileRun]:
        """`Query pk = RECONCILE` newest first (consistent), from `since` on."""
        condition = "pk = :pk"
        vals: dict[str, Any] = {":pk": av(t.RECONCILE_PK)}
        if since is not None:
            condition += " AND sk >= :since"
            vals[":since"] = av(t.padded(epoch_ms(since)))
        runs: list[ReconcileRun] = []
        if limit <= 0:
            return runs
        async for item in self._db.query(
            condition, {}, vals, forward=False, consistent=True, page_size=limit
        ):
            runs.append(_run_of(item))
            if len(runs) >= limit:
                break
        return runs

    async def prune(self, before: datetime) -> None:
        """Nothing to do: the items' TTL deletes them."""
