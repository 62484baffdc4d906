"""Monitoring in SQL: probe results, provider calls, counters and the raw rows of the
partial hours at a range's ends."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, insert, select

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.kit.ids import new_id
from orderhub.monitoring.rollups import CallRecord, Counters, OrderFacts, hour_of
from orderhub.orders.domain import OrderStatus, PaymentStatus
from orderhub.store.counting import ProviderCallCounting
from orderhub.store.protocol import ProbeResult, ProbeSummary, ProviderCall
from orderhub.store.sql import counters
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import PreparedWrite, SqlEngine

_INSERT_CALL = PreparedWrite(insert(t.provider_calls))
FOLD_AFTER = timedelta(hours=2)  # hours older than this are folded (`counters.py`)
FOLD_EVERY = timedelta(minutes=10)


class SqlMonitoringRepository(ProviderCallCounting):
    def __init__(self, db: SqlEngine) -> None:
        self._db = db
        self._next_fold: datetime | None = None

    async def record_probes(self, results: list[ProbeResult]) -> None:
        if not results:
            return
        async with self._db.write() as conn:
            await conn.execute(
                insert(t.probe_results),
                [
                    {
                        "id": str(new_id()),
                        "name": r.name,
                        "at": epoch_ms(r.at),
                        "ok": r.ok,
                        "latency_ms": r.latency_ms,
                        "error": r.error,
                    }
                    for r in results
                ],
            )

    async def probe_summaries(self, since: datetime) -> list[ProbeSummary]:
        p = t.probe_results.c
        async with self._db.read() as conn:
            counts = (
                await conn.execute(
                    select(
                        p.name,
                        func.count().label("checks"),
                        func.sum(case((p.ok, 1), else_=0)).label("successes"),
                        func.max(p.at).label("last_at"),
                    )
                    .where(p.at >= epoch_ms(since))
                    .group_by(p.name)
                )
            ).all()
            summaries = []
            for row in counts:
                last_ok = (
                    await conn.execute(
                        select(p.ok)
                        .where(p.name == row.name, p.at == row.last_at)
                        .order_by(p.id.desc())
                        .limit(1)
                    )
                ).scalar_one()
                summaries.append(
                    ProbeSummary(
                        name=row.name,
                        checks=int(row.checks),
                        successes=int(row.successes or 0),
                        last_at=from_epoch_ms(row.last_at),
                        last_ok=bool(last_ok),
                    )
                )
        return summaries

    async def _record_provider_call(self, call: ProviderCall, counted: Counters) -> None:
        async with self._db.write() as conn:
            await conn.run(
                _INSERT_CALL,
                [
                    {
                        "id": str(call.id),
                        "provider": call.provider,
                        "operation": call.operation,
                        "ok": call.ok,
                        "duration_ms": call.duration_ms,
                        "at": epoch_ms(call.at),
                    }
                ],
            )
            await counters.add_counters(conn, [counted])

    async def hourly_totals(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...]
    ) -> dict[str, int]:
        async with self._db.read() as conn:
            return await counters.hourly_totals(conn, start_hour_ms, end_hour_ms, prefixes)

    async def hourly_series(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...], step_ms: int
    ) -> dict[int, dict[str, int]]:
        async with self._db.read() as conn:
            return await counters.hourly_series(conn, start_hour_ms, end_hour_ms, prefixes, step_ms)

    async def gauges(self) -> dict[str, int]:
        async with self._db.read() as conn:
            return await counters.gauges(conn)

    async def orders_created(self, start_ms: int, end_ms: int) -> list[OrderFacts]:
        """From the columns alone (the `ix_orders_metrics` index covers them): no
        document is read."""
        o = t.orders.c
        rows = await self._db.rows(
            select(
                o.created_at,
                o.paid_at,
                o.status,
                o.payment_status,
                o.currency,
                o.total_minor,
                o.refunded_minor,
            ).where(o.created_at >= start_ms, o.created_at < end_ms)
        )
        # the columns in the order of OrderFacts' fields
        return [
            OrderFacts(
                row.created_at,
                row.paid_at,
                OrderStatus(row.status),
                PaymentStatus(row.payment_status),
                row.currency,
                row.total_minor,
                row.refunded_minor,
            )
            for row in rows
        ]

    async def calls_between(self, start_ms: int, end_ms: int) -> list[CallRecord]:
        c, a = t.provider_calls.c, t.delivery_attempts.c
        async with self._db.read() as conn:
            calls = (
                await conn.execute(
                    select(c.provider, c.ok, c.at).where(c.at >= start_ms, c.at < end_ms)
                )
            ).all()
            attempts = (
                await conn.execute(
                    select(a.integration, a.outcome, a.at).where(a.at >= start_ms, a.at < end_ms)
                )
            ).all()
        return [CallRecord(row.provider, bool(row.ok), row.at) for row in calls] + [
            CallRecord(row.integration, row.outcome == "delivered", row.at) for row in attempts
        ]

    async def prune(self, probes_before: datetime, errors_before: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                delete(t.probe_results).where(t.probe_results.c.at < epoch_ms(probes_before))
            )
            await conn.execute(
                delete(t.error_log).where(t.error_log.c.at < epoch_ms(errors_before))
            )

    async def compact(self, now: datetime) -> int:
        """Fold the shards of the hourly counters older than `FOLD_AFTER` into one row per
        hour and metric and into the daily counters, at most every `FOLD_EVERY` in this
        process (any number of processes may fold at once: each row is moved by one of
        them)."""
        if self._next_fold is not None and now < self._next_fold:
            return 0
        self._next_fold = now + FOLD_EVERY
        before = hour_of(epoch_ms(now - FOLD_AFTER))
        async with self._db.write() as conn:
            return await counters.fold_counters(conn, before)
