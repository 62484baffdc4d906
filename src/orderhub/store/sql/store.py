"""The SQL store: SQLite or PostgreSQL, one repository per module, assembled here."""

from __future__ import annotations

import asyncio
import base64
import secrets

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from orderhub.delivery.model import DeliveryTargets
from orderhub.store.sql import tables as t
from orderhub.store.sql.deliveries import SqlDeliveryRepository
from orderhub.store.sql.engine import SqlEngine
from orderhub.store.sql.monitoring import SqlMonitoringRepository
from orderhub.store.sql.orders import SqlUnitOfWork
from orderhub.store.sql.records import (
    SqlApiKeyRepository,
    SqlErrorLogRepository,
    SqlIdempotencyRepository,
    SqlLeaseRepository,
    SqlWebhookEventRepository,
)
from orderhub.store.sql.sandbox import SqlSandboxRepository
from orderhub.store.sql.sessions import SqlConsoleSessionRepository


class SqlStore:
    def __init__(
        self, database_url: str, delivery_targets: DeliveryTargets = lambda _event: []
    ) -> None:
        self.database_url = database_url
        self.delivery_targets = delivery_targets
        self.db = SqlEngine(database_url)
        self.idempotency = SqlIdempotencyRepository(self.db)
        self.api_keys = SqlApiKeyRepository(self.db)
        self.errors = SqlErrorLogRepository(self.db)
        self.webhook_events = SqlWebhookEventRepository(self.db)
        self.deliveries = SqlDeliveryRepository(self.db)
        self.leases = SqlLeaseRepository(self.db)
        self.monitoring = SqlMonitoringRepository(self.db)
        self.sandbox = SqlSandboxRepository(self.db)
        self.console_sessions = SqlConsoleSessionRepository(self.db)
        # Set when a commit wrote deliveries; the in-process worker waits on it.
        self.outbox_signal = asyncio.Event()

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.db, self.delivery_targets, self.outbox_signal)

    async def server_secret(self, name: str) -> bytes:
        s = t.server_secrets.c
        async with self.db.read() as conn:
            value = (await conn.execute(select(s.value).where(s.name == name))).scalar_one_or_none()
        if value is None:
            fresh = base64.b64encode(secrets.token_bytes(32)).decode()
            async with self.db.write() as conn:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(t.server_secrets).values(name=name, value=fresh))
                except IntegrityError:
                    pass  # another instance made it first; read theirs below
                value = (await conn.execute(select(s.value).where(s.name == name))).scalar_one()
        return base64.b64decode(value)

    async def ping(self) -> None:
        async with self.db.read() as conn:
            await conn.execute(select(func.count()).select_from(t.server_secrets))

    async def close(self) -> None:
        await self.db.close()
