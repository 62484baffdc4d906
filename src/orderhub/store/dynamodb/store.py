"""The DynamoDB store: one table per `dynamodb://PREFIX`, one repository per module,
assembled here."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets

from orderhub.delivery.model import DeliveryTargets
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.deliveries import DynamoDeliveryRepository
from orderhub.store.dynamodb.engine import ConditionFailed, DynamoEngine
from orderhub.store.dynamodb.mappers import item_of
from orderhub.store.dynamodb.monitoring import DynamoMonitoringRepository
from orderhub.store.dynamodb.orders import DynamoUnitOfWork
from orderhub.store.dynamodb.records import (
    DynamoApiKeyRepository,
    DynamoErrorLogRepository,
    DynamoIdempotencyRepository,
    DynamoLeaseRepository,
    DynamoWebhookEventRepository,
)
from orderhub.store.dynamodb.sandbox import DynamoSandboxRepository
from orderhub.store.dynamodb.sessions import DynamoConsoleSessionRepository
from orderhub.store.protocol import StoreError


class DynamoStore:
    def __init__(
        self,
        url: str,
        region: str,
        delivery_targets: DeliveryTargets = lambda _event: [],
    ) -> None:
        self.url = url
        self.delivery_targets = delivery_targets
        self.db = DynamoEngine(t.Table(t.table_name(url)), region)
        self.idempotency = DynamoIdempotencyRepository(self.db)
        self.api_keys = DynamoApiKeyRepository(self.db)
        self.errors = DynamoErrorLogRepository(self.db)
        self.webhook_events = DynamoWebhookEventRepository(self.db)
        self.deliveries = DynamoDeliveryRepository(self.db)
        self.leases = DynamoLeaseRepository(self.db)
        self.monitoring = DynamoMonitoringRepository(self.db, self.leases)
        self.sandbox = DynamoSandboxRepository(self.db)
        self.console_sessions = DynamoConsoleSessionRepository(self.db)
        # Set when a commit wrote deliveries; the in-process worker waits on it.
        self.outbox_signal = asyncio.Event()

    def unit_of_work(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self.db, self.delivery_targets, self.outbox_signal)

    async def server_secret(self, name: str) -> bytes:
        """GetItem; when absent, a conditional Put (`attribute_not_exists`) and a read of
        whichever instance won."""
        key = t.Table.key(t.secret_pk(name), "SECRET")
        for _attempt in range(3):
            item = await self.db.get(key)
            if item is not None:
                return base64.b64decode(item["value"]["S"])
            fresh = base64.b64encode(secrets.token_bytes(32)).decode()
            with contextlib.suppress(ConditionFailed):  # another instance made it first
                await self.db.call(
                    "put_item",
                    TableName=self.db.name,
                    Item={**key, **item_of(value=fresh)},
                    ConditionExpression="attribute_not_exists(pk)",
                )
        raise StoreError("store error: the server secret could not be read")

    async def ping(self) -> None:
        """A real round trip: a strongly consistent GetItem of the meta item."""
        await self.db.call(
            "get_item", TableName=self.db.name, Key=self.db.table.meta_key(), ConsistentRead=True
        )

    async def close(self) -> None:
        await self.db.close()
