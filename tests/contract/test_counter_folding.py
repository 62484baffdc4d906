"""Folding counters (`MonitoringRepository.compact`): SQL moves the shards of past hours
into one row per hour and metric, DynamoDB folds its journal into the totals. Either
way no figure changes, and a 90-day sum reads fewer rows."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import create_engine, func, select

from orderhub.kit.clock import FrozenClock
from orderhub.kit.ids import new_id
from orderhub.monitoring import figures
from orderhub.orders.domain import EventSource, Order
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


def _sharded_rows(database_url: str) -> tuple[int, int]:
    """(rows of shards other than 0, every row) of the hourly counters."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            h = t.hourly_counters.c
            sharded = conn.execute(select(func.count()).where(h.shard != 0)).scalar_one()
            every = conn.execute(select(func.count()).select_from(t.hourly_counters)).scalar_one()
    finally:
        engine.dispose()
    return sharded, every


async def test_sql_folds_the_shards_of_past_hours_only(sql_database_url: str) -> None:
    store = open_test_store(sql_database_url)
    try:
        await _history(store)
        sharded, every = _sharded_rows(sql_database_url)
        assert sharded > 0
        now = NOW + timedelta(minutes=30)
        folded = await store.monitoring.compact(now)
        assert folded > 0
        after_sharded, after_every = _sharded_rows(sql_database_url)
        assert after_every < every  # the shards of each past hour became one row
        assert 0 < after_sharded < sharded  # the last two hours keep their shards
        # at most one fold per interval in a process; the next one finds nothing old
        assert await store.monitoring.compact(now + timedelta(minutes=1)) == 0
        assert await store.monitoring.compact(now + timedelta(minutes=11)) == 0
    finally:
        await store.close()
