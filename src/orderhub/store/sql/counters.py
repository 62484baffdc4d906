"""Counters in SQL: one row per (hour, metric, shard) and per (metric, shard), added to
with an upsert in the transaction of the write they describe. A shard is the writer's
(an order's or a delivery's), so no row is written by every change. Once an hour is
past (few writes reach it), `fold_counters` moves its shards into one folded row and adds
the same amounts to the day's row, so a sum over 90 days reads about one row per day and
metric (plus the few rows written since the last fold), not 2,160 hours of sixteen."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, func, literal_column, or_, select, union_all
from sqlalchemy.dialects.postgresql import insert as insert_pg
from sqlalchemy.dialects.sqlite import insert as insert_sqlite

from orderhub.monitoring.rollups import DAY_MS, Counters, day_of, split_days
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


FOLDED = -1  # the shard of folded hourly rows, whose amounts are in `daily_counters` too
# Written out, not bound, so the planner can use the partial index of the unfolded rows.
_UNFOLDED = t.hourly_counters.c.shard >= literal_column("0")

_STATEMENTS: dict[tuple[str, str], PreparedWrite] = {}


async def _add(
    conn: SqlConnection, table: Table, keys: tuple[str, ...], sums: dict[tuple[Any, ...], int]
) -> None:
    """Add each sum to the row of its key (the values of `keys`, in order), in key order
    (concurrent writers lock rows in the same order, so they never deadlock)."""
    rows = [
        {**dict(zip(keys, key, strict=True)), "value": value}
        for key, value in sorted(sums.items())
        if value
    ]
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
    """Add every delta, merged per row."""
    hourly: dict[tuple[Any, ...], int] = {}
    gauges: dict[tuple[Any, ...], int] = {}
    for c in counters:
        for (hour, metric), value in c.hourly.items():
            hourly[(hour, metric, c.shard)] = hourly.get((hour, metric, c.shard), 0) + value
        for metric, value in c.gauges.items():
            gauges[(metric, c.shard)] = gauges.get((metric, c.shard), 0) + value
    await _add(conn, t.hourly_counters, ("hour", "metric", "shard"), hourly)
    await _add(conn, t.gauge_counters, ("metric", "shard"), gauges)


async def fold_counters(conn: SqlConnection, before_hour_ms: int) -> int:
    """Fold the writers' rows (shards 0-15) of the hours before `before_hour_ms`: each
    hour and metric becomes one row in shard `FOLDED`, and the same amounts are added to
    its day in `daily_counters`. Returns how many rows were folded. The rows are deleted
    with RETURNING, so what is added is exactly what was deleted, even when a writer adds
    to one of them at the same time (it then waits for the row, or writes a new one that
    the next fold takes)."""
    h = t.hourly_counters.c
    if conn.dialect.name == "postgresql":
        # lock them in key order first, the order writers lock counter rows in
        # (`add_counters`), so a write to an old hour and a fold never deadlock
        await conn.execute(
            select(h.hour)
            .where(h.hour < before_hour_ms, _UNFOLDED)
            .order_by(h.hour, h.metric, h.shard)
            .with_for_update()
        )
    moved = (
        await conn.execute(
            t.hourly_counters.delete()
            .where(h.hour < before_hour_ms, _UNFOLDED)
            .returning(h.hour, h.metric, h.value)
        )
    ).all()
    hours: dict[tuple[int, str], int] = {}
    days: dict[tuple[Any, ...], int] = {}
    for row in moved:
        hour, metric, value = int(row.hour), str(row.metric), int(row.value)
        hours[(hour, metric)] = hours.get((hour, metric), 0) + value
        days[(day_of(hour), metric)] = days.get((day_of(hour), metric), 0) + value
    await add_counters(conn, [Counters(FOLDED, hours)])
    await _add(conn, t.daily_counters, ("day", "metric"), days)
    return len(moved)


def _prefixed(metric: Any, prefixes: tuple[str, ...]) -> Any:
    return or_(*(metric.startswith(p) for p in prefixes))


async def counter_sums(
    conn: SqlConnection,
    start_hour_ms: int,
    end_hour_ms: int,
    prefixes: tuple[str, ...],
    step_ms: int | None,
) -> dict[tuple[int, str], int]:
    """The counters of the whole hours [start, end) whose metric has one of `prefixes`,
    summed per (step, metric); `step_ms` None sums the whole range as step 0.

    With no step or a step of whole days, the whole days of the range are read from the
    daily rows plus the hourly rows not folded into them yet, the hours at the ends from
    the hourly rows: one statement, so it reads one snapshot even while a fold commits."""
    h, d = t.hourly_counters.c, t.daily_counters.c

    def bucket(column: Any) -> Any:
        return column - column % step_ms if step_ms else literal_column("0")

    if step_ms is not None and step_ms % DAY_MS:  # hourly steps: the hourly rows alone
        parts: list[Any] = [
            select(bucket(h.hour).label("step"), h.metric, h.value).where(
                h.hour >= start_hour_ms, h.hour < end_hour_ms, _prefixed(h.metric, prefixes)
            )
        ]
    else:
        head, days, tail = split_days(start_hour_ms, end_hour_ms)
        parts = [
            select(bucket(h.hour).label("step"), h.metric, h.value).where(
                or_(
                    and_(h.hour >= head[0], h.hour < head[1]),
                    and_(h.hour >= tail[0], h.hour < tail[1]),
                ),
                _prefixed(h.metric, prefixes),
            )
        ]
        if days[0] < days[1]:
            parts += [
                select(bucket(d.day).label("step"), d.metric, d.value).where(
                    d.day >= days[0], d.day < days[1], _prefixed(d.metric, prefixes)
                ),
                select(bucket(h.hour).label("step"), h.metric, h.value).where(
                    h.hour >= days[0], h.hour < days[1], _UNFOLDED, _prefixed(h.metric, prefixes)
                ),
            ]
    every = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    rows = (
        await conn.execute(
            select(every.c.step, every.c.metric, func.sum(every.c.value).label("value")).group_by(
                every.c.step, every.c.metric
            )
        )
    ).all()
    return {(int(row.step), str(row.metric)): int(row.value) for row in rows if row.value}


async def hourly_totals(
    conn: SqlConnection, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...]
) -> dict[str, int]:
    sums = await counter_sums(conn, start_hour_ms, end_hour_ms, prefixes, None)
    return {metric: value for (_step, metric), value in sums.items()}


async def hourly_series(
    conn: SqlConnection,
    start_hour_ms: int,
    end_hour_ms: int,
    prefixes: tuple[str, ...],
    step_ms: int,
) -> dict[int, dict[str, int]]:
    series: dict[int, dict[str, int]] = {}
    sums = await counter_sums(conn, start_hour_ms, end_hour_ms, prefixes, step_ms)
    for (step, metric), value in sums.items():
        series.setdefault(step, {})[metric] = value
    return series


async def gauges(conn: SqlConnection) -> dict[str, int]:
    g = t.gauge_counters.c
    rows = (
        await conn.execute(select(g.metric, func.sum(g.value).label("value")).group_by(g.metric))
    ).all()
    return {row.metric: int(row.value) for row in rows}
