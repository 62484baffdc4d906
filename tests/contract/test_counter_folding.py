"""Folding counters (`MonitoringRepository.compact`): SQL moves the shards of past hours
into one row per hour and metric and adds them to their day, DynamoDB folds its journal
into the totals. Either way no figure changes, and a 90-day sum reads fewer rows."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

from sqlalchemy import create_engine, func, select

from orderhub.kit.clock import FrozenClock
from orderhub.kit.ids import new_id
from orderhub.monitoring import figures
from orderhub.monitoring.rollups import buckets_from, contributions
from orderhub.monitoring.service import series_bounds
from orderhub.orders.domain import EventSource, Order, Refund, RefundStatus
from orderhub.store.protocol import ProviderCall, Store, UnitOfWork
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import sync_url
from orderhub.store.unit_of_work import update_order
from tests.fixtures.domain import NOW, make_order
from tests.fixtures.stores import open_test_store


async def _history(store: Store, count: int = 48) -> None:
    """Orders over the 30 hours before NOW, half of them paid later, provider calls."""
    rng = random.Random(5)
    for n in range(count):
        at = NOW - timedelta(minutes=rng.randrange(0, 30 * 60))
        order = make_order(at=at)
        async with store.unit_of_work() as uow:
            await uow.orders.add(order)
            await uow.commit()
        if n % 2 == 0:

            async def pay(current: Order, _uow: UnitOfWork, now: datetime) -> None:
                current.record_payment_succeeded(now, EventSource.WEBHOOK)

            await update_order(store, FrozenClock(at + timedelta(minutes=1)), order.id, pay)
        await store.monitoring.record_provider_call(
            ProviderCall(new_id(), "stripe", "create_intent", n % 5 != 0, 5, at)
        )


async def _figures(store: Store) -> list[object]:
    windows = [
        (NOW - timedelta(days=90), NOW + timedelta(hours=1)),
        (NOW - timedelta(hours=26, minutes=17), NOW - timedelta(hours=3, minutes=4)),
        (NOW - timedelta(hours=7), NOW),
    ]
    found: list[object] = []
    for start, end in windows:
        found.append(await figures.order_buckets(store, start, end))
        found.append(await figures.call_counts(store, start, end))
    return found


async def test_folding_changes_no_figure(database_url: str) -> None:
    store = open_test_store(database_url)
    try:
        await _history(store)
        before = await _figures(store)
        assert await store.monitoring.compact(NOW + timedelta(hours=1)) > 0
        assert await _figures(store) == before
        # more changes after a fold are counted as before, and fold again
        await _history(store, count=6)
        later = await _figures(store)
        await store.monitoring.compact(NOW + timedelta(hours=3))
        assert await _figures(store) == later
    finally:
        await store.close()


async def _days_of_orders(store: Store) -> list[Order]:
    """Orders over the 6 days before NOW, a third of them paid an hour later."""
    rng = random.Random(9)
    made = []
    for n in range(36):
        at = NOW - timedelta(minutes=rng.randrange(0, 6 * 24 * 60))
        order = make_order(at=at)
        async with store.unit_of_work() as uow:
            await uow.orders.add(order)
            await uow.commit()
        if n % 3 == 0:

            async def pay(current: Order, _uow: UnitOfWork, now: datetime) -> None:
                current.record_payment_succeeded(now, EventSource.WEBHOOK)

            await update_order(store, FrozenClock(at + timedelta(hours=1)), order.id, pay)
        made.append(order)
    return made


async def _current(store: Store, orders: list[Order]) -> list[Order]:
    async with store.unit_of_work() as uow:
        found = [await uow.orders.get(order.id) for order in orders]
    return [order for order in found if order is not None]


async def _agrees_with_the_orders(store: Store, orders: list[Order]) -> None:
    """The 90-day figures, a daily series over 8 days and a range cut inside days all say
    what counting the orders themselves says."""
    current = await _current(store, orders)
    ranges = [
        (NOW - timedelta(days=90), NOW + timedelta(minutes=5)),
        (NOW - timedelta(days=4, hours=5, minutes=11), NOW - timedelta(days=1, minutes=3)),
    ]
    for start, end in ranges:
        inside = [o for o in current if start <= o.created_at < end]
        assert await figures.order_buckets(store, start, end) == buckets_from(
            contributions(inside)
        ), (start, end)
    step = timedelta(days=1)
    points = series_bounds(NOW - timedelta(days=8), NOW + timedelta(minutes=5), step)
    series = await figures.series_figures(store, points, step // timedelta(milliseconds=1))
    for (lo, hi), (buckets, _calls) in zip(points, series, strict=True):
        inside = [o for o in current if lo <= o.created_at < hi]
        assert buckets == buckets_from(contributions(inside)), (lo, hi)


async def test_changes_to_folded_days_are_counted(database_url: str) -> None:
    """Folded days keep counting: an order of four days ago paid and refunded after its
    day was folded moves that day's figures, before the next fold and after it."""
    store = open_test_store(database_url)
    try:
        orders = await _days_of_orders(store)
        await _agrees_with_the_orders(store, orders)
        assert await store.monitoring.compact(NOW) > 0
        await _agrees_with_the_orders(store, orders)

        old = next(o for o in orders if o.created_at < NOW - timedelta(days=4))

        async def pay_and_refund(current: Order, _uow: UnitOfWork, now: datetime) -> None:
            if current.paid_at is None:
                current.record_payment_succeeded(now, EventSource.WEBHOOK)
            current.record_refund(
                Refund("r-late", 250, None, RefundStatus.SUCCEEDED, now), now, EventSource.API
            )

        await update_order(store, FrozenClock(NOW), old.id, pay_and_refund)
        await _agrees_with_the_orders(store, orders)
        assert await store.monitoring.compact(NOW + timedelta(hours=1)) > 0
        await _agrees_with_the_orders(store, orders)
    finally:
        await store.close()


def _sharded_rows(database_url: str) -> tuple[int, int, int]:
    """(rows not folded yet, every row) of the hourly counters, and the daily rows."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            h = t.hourly_counters.c
            sharded = conn.execute(select(func.count()).where(h.shard >= 0)).scalar_one()
            every = conn.execute(select(func.count()).select_from(t.hourly_counters)).scalar_one()
            days = conn.execute(select(func.count()).select_from(t.daily_counters)).scalar_one()
    finally:
        engine.dispose()
    return sharded, every, days


async def test_sql_folds_the_shards_of_past_hours_only(sql_database_url: str) -> None:
    store = open_test_store(sql_database_url)
    try:
        await _history(store)
        sharded, every, days = _sharded_rows(sql_database_url)
        assert sharded == every and days == 0
        now = NOW + timedelta(minutes=30)
        folded = await store.monitoring.compact(now)
        assert folded > 0
        after_sharded, after_every, after_days = _sharded_rows(sql_database_url)
        assert after_every < every  # the shards of each past hour became one row
        assert 0 < after_sharded < sharded  # the last two hours keep their shards
        assert after_days > 0  # and the folded hours were added to their days
        # at most one fold per interval in a process; the next one finds nothing old
        assert await store.monitoring.compact(now + timedelta(minutes=1)) == 0
        assert await store.monitoring.compact(now + timedelta(minutes=11)) == 0
    finally:
        await store.close()


async def test_folds_beside_writes_to_the_hours_they_fold_lose_nothing(
    postgres_database_url: str,
) -> None:
    """PostgreSQL: folds running while orders of the hours being folded change (each
    change locks its counter rows) neither fail nor lose or double a count."""
    store = open_test_store(postgres_database_url)
    try:
        orders = await _days_of_orders(store)
        current = await _current(store, orders)
        pending = [o for o in current if o.paid_at is None]

        async def pay(order: Order) -> None:
            async def change(current: Order, _uow: UnitOfWork, now: datetime) -> None:
                current.record_payment_succeeded(now, EventSource.WEBHOOK)

            await update_order(store, FrozenClock(NOW), order.id, change)

        folds = [store.monitoring.compact(NOW + timedelta(hours=1)) for _ in range(3)]
        fresh = [open_test_store(postgres_database_url) for _ in range(2)]
        folds += [other.monitoring.compact(NOW + timedelta(hours=1)) for other in fresh]
        await asyncio.gather(*(pay(o) for o in pending), *folds)
        for other in fresh:
            await other.close()
        await _agrees_with_the_orders(store, orders)
        await store.monitoring.compact(NOW + timedelta(hours=2))
        await _agrees_with_the_orders(store, orders)
    finally:
        await store.close()
