"""Reconciliation runs in DynamoDB: one partition (`RECONCILE`, a run every few minutes),
sorted by start time, expired by TTL after 30 days."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderhub.kit.clock import epoch_ms
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import DynamoEngine, first_items
from orderhub.store.dynamodb.mappers import av, item_of, values
from orderhub.store.protocol import ReconcileRun
from orderhub.store.runs import ReconcileRunsBase, record_of, record_values


class DynamoReconcileRunRepository(ReconcileRunsBase):
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def record(self, run: ReconcileRun) -> None:
        item = item_of(
            pk=t.RECONCILE_PK,
            sk=f"{t.padded(epoch_ms(run.started_at))}#{run.id}",
            expires=t.ttl_seconds(run.started_at + t.RECONCILE_RUNS_KEPT),
            **record_values(run),
        )
        await self._db.call("put_item", TableName=self._db.name, Item=item)

    async def _newest_first(self, since: datetime | None, limit: int) -> list[ReconcileRun]:
        """`Query pk = RECONCILE` newest first (consistent), from `since` on."""
        condition = "pk = :pk"
        vals: dict[str, Any] = {":pk": av(t.RECONCILE_PK)}
        if since is not None:
            condition += " AND sk >= :since"
            vals[":since"] = av(t.padded(epoch_ms(since)))
        runs = self._db.query(condition, {}, vals, forward=False, consistent=True, page_size=limit)
        return [record_of(ReconcileRun, values(item)) for item in await first_items(runs, limit)]

    async def prune(self, before: datetime) -> None:
        """Nothing to do: the items' TTL deletes them."""
