"""Counters in SQL: one row per (hour, metric, shard) and per (metric, shard), added to
with an upsert in the transaction of the write they describe. A shard is the writer's
(an order's or a delivery's), so no row is written by every change. Once an hour is
past (few writes reach it), `fold_shards` moves its shards into shard 0, so a sum over
90 days reads one row per hour and metric, not sixteen."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, or_, select
from sqlalchemy.dialects.postgresql import insert as insert_pg
from sqlalchemy.dialects.sqlite import insert as insert_sqlite

from orderhub.monitoring.rollups import Counters
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import PreparedWrite, SqlConnection


def _upsert_statement(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    """`INSERT ... ON CONFLICT (keys) DO UPDATE SET value = value + excluded.value`, run
    with one parameter set per row: the same statement whatever the number of rows, so
    it is built and compiled once (a multi-row VALUES is a new statement every time)."""
    insert = insert_pg if dialect == "postgresql" else insert_sqlite
    statement: Any = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={"value": table.c.value + statement.excluded.value}
    )


_STATEMENTS: dict[tuple[str, str], PreparedWrite] = {}


async def _upsert(
    conn: SqlConnection, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    statement = _STATEMENTS.get((dialect, table.name))
    if statement is None:
        statement = _STATEMENTS[(dialect, table.name)] = PreparedWrite(
            _upsert_statement(dialect, table, keys)
        )
    await conn.run(statement, rows)


async def add_counters(conn: SqlConnection, counters: list[Counters]) -> None:
    """Add every delta, merged per row and in a fixed order (concurrent writers lock rows
    in the same order, so they never deadlock)."""
    hourly: dict[tuple[int, str, int], int] = {}
    gauges: dict[tuple[str, int], int] = {}
    for c in counters:
        for (hour, metric), value in c.hourly.items():
            hourly[(hour, metric, c.shard)] = hourly.get((hour, metric, c.shard), 0) + value
        for metric, value in c.gauges.items():
            gauges[(metric, c.shard)] = gauges.get((metric, c.shard), 0) + value
    await _upsert(
        conn,
        t.hourly_counters,
        ("hour", "metric", "shard"),
        [
            {"hour": hour, "metric": metric, "shard": shard, "value": value}
            for (hour, metric, shard), value in sorted(hourly.items())
            if value
        ],
    )
    await _upsert(
        conn,
        t.gauge_counters,
        ("metric", "shard"),
        [
            {"metric": metric, "shard": shard, "value": value}
            for (metric, shard), value in sorted(gauges.items())
            if value
        ],
    )


async def fold_shards(conn: SqlConnection, before_hour_ms: int) -> int:
    """Move the hourly counters of the hours before `before_hour_ms` into shard 0; returns
    how many rows were folded. The rows are deleted with RETURNING, so what is added to
    shard 0 is exactly what was deleted, even when a writer adds to one of them at the
    same time (it then waits for the row, or writes a new one that the next fold takes)."""
    h = t.hourly_counters.c
    moved = (
        await conn.execute(
            t.hourly_counters.delete()
            .where(h.hour < before_hour_ms, h.shard != 0)
            .returning(h.hour, h.metric, h.value)
        )
    ).all()
    sums: dict[tuple[int, str], int] = {}
    for row in moved:
        sums[(row.hour, row.metric)] = sums.get((row.hour, row.metric), 0) + int(row.value)
    if sums:
        await add_counters(conn, [Counters(0, sums)])
    return len(moved)


async def hourly_totals(
    conn: SqlConnection, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...]
) -> dict[str, int]:
    h = t.hourly_counters.c
    rows = (
        await conn.execute(
            select(h.metric, func.sum(h.value).label("value"))
            .where(
                h.hour >= start_hour_ms,
                h.hour < end_hour_ms,
                or_(*(h.metric.startswith(p) for p in prefixes)),
            )
            .group_by(h.metric)
        )
    ).all()
    return {row.metric: int(row.value) for row in rows}


async def hourly_series(
    conn: SqlConnection,
    start_hour_ms: int,
    end_hour_ms: int,
    prefixes: tuple[str, ...],
    step_ms: int,
) -> dict[int, dict[str, int]]:
    h = t.hourly_counters.c
    step = (h.hour - h.hour % step_ms).label("step")
    rows = (
        await conn.execute(
            select(step, h.metric, func.sum(h.value).label("value"))
            .where(
                h.hour >= start_hour_ms,
                h.hour < end_hour_ms,
                or_(*(h.metric.startswith(p) for p in prefixes)),
            )
            .group_by(step, h.metric)
        )
    ).all()
    series: dict[int, dict[str, int]] = {}
    for row in rows:
        series.setdefault(int(row.step), {})[row.metric] = int(row.value)
    return series


async def gauges(conn: SqlConnection) -> dict[str, int]:
    g = t.gauge_counters.c
    rows = (
        await conn.execute(select(g.metric, func.sum(g.value).label("value")).group_by(g.metric))
    ).all()
    return {row.metric: int(row.value) for row in rows}
