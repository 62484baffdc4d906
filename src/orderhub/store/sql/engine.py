"""The SQL engine: SQLite (WAL, one writer at a time) or PostgreSQL, SQLAlchemy 2 Core async.

Reads run on a pooled connection outside any write; writes run in `write()`: one
transaction (BEGIN IMMEDIATE on SQLite, behind a per-process lock so no writer ever sees
"database is locked"), and every database error leaves it as a `StoreError` with no SQL,
parameter or driver name in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from orderhub.store.protocol import StoreError


def async_url(database_url: str) -> str:
    """`sqlite:///p` -> `sqlite+aiosqlite:///p`; `postgresql://...` -> psycopg (async)."""
    if database_url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + database_url.removeprefix("sqlite:///")
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    raise StoreError(f"not a SQL database url: {database_url.split(':', 1)[0]}")


def sync_url(database_url: str) -> str:
    """The same database through a synchronous driver (Alembic migrations)."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return database_url


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout for other processes, foreign keys, and explicit BEGINs:
    BEGIN IMMEDIATE for writes, so a writer never has to upgrade a read lock (the usual
    source of "database is locked")."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("orderhub_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class SqlEngine:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.is_sqlite = database_url.startswith("sqlite:///")
        if self.is_sqlite:
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_async_engine(
            async_url(database_url), pool_pre_ping=not self.is_sqlite, hide_parameters=True
        )
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        # SQLite has one writer at a time; queueing writers here (rather than letting them
        # collide on the file lock) means no write ever sees "database is locked".
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (its own short transaction)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            raise StoreError(f"store error: {type(exc).__name__}") from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, committed when the block ends without an exception."""
        lock = self._write_lock
        if lock is not None:
            await lock.acquire()
        try:
            try:
                async with self.engine.connect() as conn:
                    conn = await conn.execution_options(orderhub_write=True)
                    async with conn.begin():
                        yield conn
            except (SQLAlchemyError, DBAPIError, OSError) as exc:
                raise StoreError(f"store error: {type(exc).__name__}") from exc
        finally:
            if lock is not None:
                lock.release()

    async def close(self) -> None:
        await self.engine.dispose()
