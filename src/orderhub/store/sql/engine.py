"""The SQL engine: SQLite (WAL, one writer at a time) or PostgreSQL, SQLAlchemy 2 Core.

Reads run on a pooled connection outside any write; writes run in `write()`: one
transaction (BEGIN IMMEDIATE on SQLite, behind a per-process lock so no writer ever sees
"database is locked"), and every database error leaves it as a `StoreError` that says
what failed in words, with no SQL, parameter or class name in it (the driver's class is
in the structured log).

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
import re
import sqlite3
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, CursorResult, Dialect, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import UpdateBase

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
        self._cursor: sqlite3.Cursor | None = None

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

    async def run(self, prepared: PreparedWrite, rows: Sequence[Mapping[str, Any]]) -> None:
        """A prepared write with one parameter set per row (at least one); a broken
        constraint is SQLAlchemy's IntegrityError on both drivers."""
        if self._inline is None:
            assert self._io is not None
            await self._io.execute(
                prepared.statement, list(rows) if len(rows) > 1 else dict(rows[0])
            )
            return
        if self._cursor is None:
            self._cursor = self._inline.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            prepared.run_sqlite(self._cursor, self._inline.dialect, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(prepared.statement), None, exc) from exc

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
        # on the driver itself: a statement without parameters or rows needs none of
        # SQLAlchemy's execution (a "locked" error is sqlite3's own here)
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "busy": another process holds the write lock."""
    original = getattr(exc, "orig", exc)
    return isinstance(original, sqlite3.OperationalError) and (
        "locked" in str(original) or "busy" in str(original)
    )


_ERRORS = (SQLAlchemyError, DBAPIError, OSError, sqlite3.Error)


class Prepared:
    """A SELECT built once (with `bindparam`s for what varies) for a hot read path. On
    SQLite `SqlEngine.fetch` runs it on the driver itself: its SQL compiled once, the
    parameters and result columns converted with the column types' own processors, so
    a read skips SQLAlchemy's per-execution work (cache key, compiled-cache lookup,
    execution context, result object). Rows have the selected columns as attributes and by
    name in `_mapping`, like SQLAlchemy's. On PostgreSQL it is executed through SQLAlchemy
    as any statement."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        row = namedtuple("_Row", statement.selected_columns.keys(), rename=True)  # type: ignore[misc]
        # its rows have the columns by name in `_mapping` too, like a SQLAlchemy Row
        self._row: Any = type("_Row", (row,), {"__slots__": (), "_mapping": property(row._asdict)})
        self._sqlite: tuple[str, tuple[str, ...], list[Any], list[Any]] | None = None

    def _compiled(self, dialect: Dialect) -> tuple[str, tuple[str, ...], list[Any], list[Any]]:
        if self._sqlite is None:
            compiled = self.statement.compile(dialect=dialect)
            names = tuple(compiled.positiontup or ())
            binds = [
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ]
            results = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self.statement.selected_columns
            ]
            self._sqlite = (compiled.string, names, binds, results)
        return self._sqlite

    def run_sqlite(
        self, cursor: sqlite3.Cursor, dialect: Dialect, parameters: Mapping[str, Any]
    ) -> list[Any]:
        sql, names, binds, results = self._compiled(dialect)
        values = [
            parameters[name] if bind is None else bind(parameters[name])
            for name, bind in zip(names, binds, strict=True)
        ]
        make = self._row._make
        if not any(results):
            return [make(row) for row in cursor.execute(sql, values)]
        return [
            make([v if p is None else p(v) for p, v in zip(results, row, strict=True)])
            for row in cursor.execute(sql, values)
        ]

    def rows_of(self, result: CursorResult[Any]) -> list[Any]:
        return list(result.all())


Fetch = Sequence[tuple[Prepared, Mapping[str, Any]]]


class PreparedWrite:
    """An INSERT (or upsert) built once, for a hot write path: run with
    `SqlConnection.run` and one parameter set per row (every row with the same keys). On
    SQLite it runs on the driver itself: its SQL compiled once per set of keys, the values
    converted by the column types' bind processors, several rows in one `executemany`.
    On PostgreSQL it goes through SQLAlchemy with the same parameter sets."""

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._sqlite: dict[tuple[str, ...], tuple[str, tuple[str, ...], list[Any]]] = {}

    def _compiled(
        self, dialect: Dialect, keys: tuple[str, ...]
    ) -> tuple[str, tuple[str, ...], list[Any]]:
        found = self._sqlite.get(keys)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=list(keys))
            names = tuple(compiled.positiontup or ())
            binds = [
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ]
            found = self._sqlite[keys] = (compiled.string, names, binds)
        return found

    def run_sqlite(
        self, cursor: sqlite3.Cursor, dialect: Dialect, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        sql, names, binds = self._compiled(dialect, tuple(rows[0]))
        values = [
            [
                row[name] if bind is None else bind(row[name])
                for name, bind in zip(names, binds, strict=True)
            ]
            for row in rows
        ]
        if len(values) == 1:
            cursor.execute(sql, values[0])
        else:
            cursor.executemany(sql, values)


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

    @property
    def url(self) -> URL:
        engine = self._sqlite if self._sqlite is not None else self._pg
        assert engine is not None
        return engine.url

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
            raise store_error(exc, self.url) from exc

    async def rows(self, statement: Executable) -> list[Any]:
        """The rows of one SELECT, read on a connection of its own."""
        async with self.read() as conn:
            return list((await conn.execute(statement)).all())

    async def first_row(self, statement: Executable) -> Any:
        """The first row of one SELECT (None when there is none), read on a connection
        of its own."""
        async with self.read() as conn:
            return (await conn.execute(statement)).first()

    async def fetch(self, reads: Fetch) -> list[list[Any]]:
        """Run prepared SELECTs in one read transaction (one snapshot: on SQLite one
        BEGIN ... ROLLBACK around them when there are several), the rows of each."""
        if self._sqlite is None:
            async with self.read() as conn:
                return [
                    prepared.rows_of(await conn.execute(prepared.statement, dict(params)))
                    for prepared, params in reads
                ]
        try:
            return self._fetch_sqlite(reads)
        except _ERRORS as exc:
            raise store_error(exc, self.url) from exc

    def _fetch_sqlite(self, reads: Fetch) -> list[list[Any]]:
        assert self._sqlite is not None
        dialect = self._sqlite.dialect
        raw = self._sqlite.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if len(reads) == 1:
                    prepared, params = reads[0]
                    return [prepared.run_sqlite(cursor, dialect, params)]
                cursor.execute("BEGIN")
                try:
                    return [prepared.run_sqlite(cursor, dialect, p) for prepared, p in reads]
                finally:
                    cursor.execute("ROLLBACK")
            finally:
                cursor.close()
        finally:
            raw.close()  # back to the pool

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
                raise store_error(exc, self.url) from exc
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
            except (OperationalError, sqlite3.OperationalError) as exc:
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
