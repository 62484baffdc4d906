"""The SQL engine: SQLite (WAL, one writer at a time) or PostgreSQL, SQLAlchemy 2 Core async.

Reads run on a pooled connection outside any write; writes run in `write()`: one
transaction (BEGIN IMMEDIATE on SQLite, behind a per-process lock so no writer ever sees
"database is locked"), and every database error leaves it as a `StoreError` that says
what failed in words, with no SQL, parameter or class name in it (the driver's class is
in the structured log).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from orderhub.kit.failures import in_words
from orderhub.store.protocol import StoreError

log = structlog.get_logger("orderhub.store")

# What the drivers say (patterns in sqlite3's and PostgreSQL's messages, lower-cased) -> words
Words = tuple[tuple[str, str], ...]
_SQLITE_WORDS: Words = (
    ("database is locked", "the database is locked"),
    ("unable to open database file", "the database file cannot be opened"),
    ("no such table", "the database has no orderhub tables (run `orderhub migrate`)"),
    ("no such column", "the database schema is out of date (run `orderhub migrate`)"),
    ("readonly database", "the database file is read-only"),
    ("database or disk is full", "the disk is full"),
    ("disk i/o error", "the disk could not be read or written"),
    ("file is not a database", "the file is not a SQLite database"),
    ("malformed", "the database file is damaged"),
)
_POSTGRES_WORDS: Words = (
    ("password authentication failed", "the user name or password was refused"),
    ("no password supplied", "a password is required and none was given"),
    ('role ".*" does not exist', "the user does not exist"),
    (
        'database ".*" does not exist',
        "the database does not exist (create it, then run `orderhub migrate`)",
    ),
    (
        'relation ".*" does not exist',
        "the database has no orderhub tables (run `orderhub migrate`)",
    ),
    ("does not exist", "the database schema is out of date (run `orderhub migrate`)"),
    ("too many connections", "the server has no connection left"),
    ("terminating connection", "the server closed the connection"),
    ("server closed the connection", "the server closed the connection"),
    ("statement timeout", "a query took longer than the server allows"),
    ("timeout|timed out", "the server did not answer in time"),
    ("could not translate host name|failed to resolve host", "the host name does not resolve"),
    ("connection refused", "the connection was refused"),
    ("connection failed", "the server could not be reached"),
    ("read-only transaction", "the server accepts no writes (it is read-only)"),
)
_NOT_CONNECTED = frozenset(
    {
        "the host name does not resolve",
        "the connection was refused",
        "the server could not be reached",
        "the server did not answer in time",
        "the user name or password was refused",
        "a password is required and none was given",
        "the server has no connection left",
        "the user does not exist",
        "the database does not exist (create it, then run `orderhub migrate`)",
    }
)


def failure_in_words(exc: BaseException, url: URL) -> str:
    """What a database error means, in words, naming the database it happened on."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).lower()
    words: Words
    if url.get_backend_name() == "sqlite":
        where, words = f"SQLite database {url.database}", _SQLITE_WORDS
    else:
        where, words = (
            f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}",
            _POSTGRES_WORDS,
        )
    if isinstance(exc, IntegrityError):
        return f"{where}: a change broke one of the database's constraints"
    meaning = next((meaning for pattern, meaning in words if re.search(pattern, text)), None)
    if meaning is None:
        meaning = (
            in_words(cause)
            if isinstance(cause, (OSError, TimeoutError))
            else "the database could not complete the request"
        )
    if meaning in _NOT_CONNECTED:
        return f"could not connect to {where}: {meaning}"
    return f"{where}: {meaning}"


def store_error(exc: BaseException, url: URL) -> StoreError:
    """The StoreError for a database error; its class goes to the log only."""
    words = failure_in_words(exc, url)
    cause = getattr(exc, "orig", None) or exc
    log.warning("store_error", error=words, error_type=type(cause).__name__)
    return StoreError(words)


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
            raise store_error(exc, self.engine.url) from exc

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
                raise store_error(exc, self.engine.url) from exc
        finally:
            if lock is not None:
                lock.release()

    async def close(self) -> None:
        await self.engine.dispose()
