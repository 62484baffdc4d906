"""The operator console's sessions in SQL: one row per session, keyed by its token's hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.store.protocol import ConsoleSession
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import SqlEngine


class SqlConsoleSessionRepository:
    def __init__(self, db: SqlEngine) -> None:
        self._db = db

    async def add(self, session: ConsoleSession) -> None:
        c = t.console_sessions.c
        async with self._db.write() as conn:
            # expired sessions go as new ones come (the index keeps this cheap)
            await conn.execute(
                delete(t.console_sessions).where(c.expires_at <= epoch_ms(session.created_at))
            )
            await conn.execute(
                insert(t.console_sessions).values(
                    token_hash=session.token_hash,
                    key_hash=session.key_hash,
                    identity=session.identity,
                    created_at=epoch_ms(session.created_at),
                    expires_at=epoch_ms(session.expires_at),
                )
            )

    async def get(self, token_hash: str, now: datetime) -> ConsoleSession | None:
        c = t.console_sessions.c
        row = await self._db.first_row(
            select(t.console_sessions).where(
                c.token_hash == token_hash, c.expires_at > epoch_ms(now)
            )
        )
        if row is None:
            return None
        return ConsoleSession(
            token_hash=row.token_hash,
            key_hash=row.key_hash,
            identity=row.identity,
            created_at=from_epoch_ms(row.created_at),
            expires_at=from_epoch_ms(row.expires_at),
        )

    async def extend(self, token_hash: str, expires_at: datetime) -> None:
        c = t.console_sessions.c
        async with self._db.write() as conn:
            await conn.execute(
                update(t.console_sessions)
                .where(c.token_hash == token_hash)
                .values(expires_at=epoch_ms(expires_at))
            )

    async def delete(self, token_hash: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                delete(t.console_sessions).where(t.console_sessions.c.token_hash == token_hash)
            )
