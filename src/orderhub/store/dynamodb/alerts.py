"""Alerts in DynamoDB: one partition (`ALERTS`; at most one alert per integration per
15 minutes), sorted by creation, expired by TTL after 7 days."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderhub.kit.clock import epoch_ms
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import DynamoEngine
from orderhub.store.dynamodb.mappers import Item, av, item_of, values
from orderhub.store.protocol import Alert
from orderhub.store.runs import record_of, record_values


def _item(alert: Alert) -> Item:
    return item_of(
        pk=t.ALERTS_PK,
        sk=f"{t.padded(epoch_ms(alert.created_at))}#{alert.id}",
        expires=t.ttl_seconds(alert.created_at + t.ALERTS_KEPT),
        **record_values(alert),
    )


class DynamoAlertRepository:
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def add(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            await self._db.call("put_item", TableName=self._db.name, Item=_item(alert))

    async def due(self, now: datetime, limit: int) -> list[Alert]:
        """`Query pk = ALERTS` over the alerts of the last week (consistent), the pending
        ones due by now kept."""
        vals: dict[str, Any] = {
            ":pk": av(t.ALERTS_PK),
            ":since": av(t.padded(epoch_ms(now - t.ALERTS_KEPT))),
        }
        found: list[Alert] = []
        async for item in self._db.query("pk = :pk AND sk >= :since", {}, vals, consistent=True):
            alert = record_of(Alert, values(item))
            if alert.status == "pending" and alert.next_attempt_at <= now:
                found.append(alert)
        found.sort(key=lambda a: (a.next_attempt_at, str(a.id)))
        return found[:limit]

    async def save(self, alert: Alert) -> None:
        await self._db.call("put_item", TableName=self._db.name, Item=_item(alert))
