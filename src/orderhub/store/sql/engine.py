"""The SQL engine: SQLite (WAL, one writer at a time) or PostgreSQL, SQLAlchemy 2 Core.

Reads run on a pooled connection outside any write; writes run in `write()`: one
transaction (BEGIN IMMEDIATE on SQLite, behind a per-process lock so no writer ever sees
"database is locked"), and every database error leaves it as a `StoreError` with no SQL,
parameter or driver name in it.

On SQLite the statements run on the event loop itself, through the synchronous driver:
an SQLite statement on a local file takes microseconds, far less than handing it to a
driver thread and back (what an async SQLite driver does for every statement), and a
transaction's statements never wait behind another task's. The one wait SQLite can have,
another process holding the write lock, is never spent blocking the loop: BEGIN
IMMEDIATE is tried without a busy timeout and retried with `asyncio.sleep` for up to
`BUSY_TIMEOUT_SECONDS`. PostgreSQL goes through psycopg's async connection, as I/O.

Repositories see a `SqlConnection`: the calls they make (`execute`, `begin_nested`,
`dialect`), the same on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Dialect, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from orderhub.store.protocol import StoreError

# How long a writer waits for another process's write lock before giving up (the async
# retry loop's limit; the connections themselves never wait).
BUSY_TIMEOUT_SECONDS = 30.0


def async_url(database_url: str) -> str:
    """`postgresql://...` -> psycopg (async)."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    raise StoreError(f"not a PostgreSQL database url: {database_url.split(':', 1)[0]}")


def sync_url(database_url: str) -> str:
    """The same database through a synchronous driver (SQLite's store, Alembic)."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return database_url


class SqlConnection:
    """What the repositories call on a connection: PostgreSQL's async one, or SQLite's
    synchronous one run inline."""

    def __init__(self, *, inline: Connection | None = None, io: AsyncConnection | None = None):
        self._inline = inline
        self._io = io

    @property
    def dialect(self) -> Dialect:
        if self._inline is not None:
            return self._inline.dialect
        assert self._io is not None
        return self._io.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        if self._inline is not None:
            return self._inline.execute(statement, parameters)
        assert self._io is not None
        return await self._io.execute(statement, parameters)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A savepoint: released when the block ends, rolled back when it raises."""
        if self._inline is not None:
            with self._inline.begin_nested():
                yield
            return
        assert self._io is not None
        async with self._io.begin_nested():
            yield


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, no busy timeout (the write lock is waited for in `write()`,
    off the loop), and explicit BEGINs: BEGIN IMMEDIATE for writes, so a writer never has
    to upgrade a read lock (the usual source of "database is locked")."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("orderhub_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "busy": another process holds the write lock."""
    original = getattr(exc, "orig", exc)
    return isinstance(original, sqlite3.OperationalError) and (
        "locked" in str(original) or "busy" in str(original)
    )


_ERRORS = (SQLAlchemyError, DBAPIError, OSError, sqlite3.Error)


class SqlEngine:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.is_sqlite = database_url.startswith("sqlite:///")
        self._sqlite: Engine | None = None
        self._pg: AsyncEngine | None = None
        if self.is_sqlite:
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            # Never blocks on checkout (extra connections beyond the pool are opened and
            # closed again): a task waiting for a connection would block the loop.
            self._sqlite = create_engine(
                database_url,
                hide_parameters=True,
                pool_size=5,
                max_overflow=-1,
                connect_args={"check_same_thread": False},
            )
            _configure_sqlite(self._sqlite)
        else:
            self._pg = create_async_engine(
                async_url(database_url), pool_pre_ping=True, hide_parameters=True
            )
        # SQLite has one writer at a time; queueing writers here (rather than letting them
        # collide on the file lock) means no write ever sees "database is locked".
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlConnection]:
        """A connection for reads (its own short transaction)."""
        try:
            if self._sqlite is not None:
                with self._sqlite.connect() as conn:
                    yield SqlConnection(inline=conn)
                return
            assert self._pg is not None
            async with self._pg.connect() as aconn:
                yield SqlConnection(io=aconn)
        except _ERRORS as exc:
            raise StoreError(f"store error: {type(exc).__name__}") from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqlConnection]:
        """One write transaction, committed when the block ends without an exception."""
        lock = self._write_lock
        if lock is not None:
            await lock.acquire()
        try:
            try:
                if self._sqlite is not None:
                    conn = await self._begin_sqlite_write()
                    try:
                        yield SqlConnection(inline=conn)
                        conn.commit()
                    finally:
                        conn.close()  # rolls back what was not committed
                    return
                assert self._pg is not None
                async with self._pg.connect() as aconn:
                    aconn = await aconn.execution_options(orderhub_write=True)
                    async with aconn.begin():
                        yield SqlConnection(io=aconn)
            except _ERRORS as exc:
                raise StoreError(f"store error: {type(exc).__name__}") from exc
        finally:
            if lock is not None:
                lock.release()

    async def _begin_sqlite_write(self) -> Connection:
        """A connection in a BEGIN IMMEDIATE transaction; while another process holds the
        write lock, wait for it here with the loop free."""
        assert self._sqlite is not None
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        pause = 0.001
        while True:
            conn = self._sqlite.connect().execution_options(orderhub_write=True)
            try:
                conn.begin()
                return conn
            except OperationalError as exc:
                conn.close()
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.dispose()
        if self._pg is not None:
            await self._pg.dispose()
