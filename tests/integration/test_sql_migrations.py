"""The SQL schema's history (Alembic): upgrading a store that holds data keeps every
order, delivery and rollup (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import create_engine, insert, inspect, text

from orderhub.delivery.model import (
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryStatus,
    Integration,
    delivery_targets,
    fan_out,
)
from orderhub.kit.clock import epoch_ms
from orderhub.kit.ids import new_id
from orderhub.monitoring import figures
from orderhub.monitoring.rollups import OrderBuckets, buckets_from, contributions
from orderhub.orders.domain import EventSource
from orderhub.store.documents import order_to_document
from orderhub.store.sql import tables as t
from orderhub.store.sql.engine import sync_url
from orderhub.store.sql.mappers import attempt_row, delivery_row, event_row, order_row
from orderhub.store.sql.migrate import alembic_config, upgrade_to_head
from tests.fixtures.domain import make_order
from tests.fixtures.stores import open_test_store

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WINDOW = (NOW - timedelta(hours=3), NOW + timedelta(hours=3))


def _fill_schema_0007(database_url: str) -> dict[str, object]:
    """Rows as the store of schema 0007 wrote them (hourly_stats included)."""
    paid = make_order(at=NOW)
    paid.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    pending = make_order(at=NOW - timedelta(minutes=90))
    orders = [paid, pending]
    engine = create_engine(sync_url(database_url))
    deliveries = []
    with engine.begin() as conn:
        for order in orders:
            events = order.take_events()
            conn.execute(insert(t.orders).values(order_row(order)))
            document = order_to_document(order)
            conn.execute(insert(t.order_events), [event_row(e, order, document) for e in events])
            made = fan_out(events, delivery_targets(list(Integration)), order.updated_at)
            conn.execute(insert(t.deliveries), [delivery_row(d) for d in made])
            deliveries.extend(made)
        attempt = DeliveryAttempt(
            new_id(), deliveries[0].id, Integration.EMAIL, "failed", 9, "503", NOW
        )
        conn.execute(insert(t.delivery_attempts).values(attempt_row(attempt)))
        conn.execute(
            insert(t.provider_calls).values(
                id=str(new_id()),
                provider="stripe",
                operation="refund",
                ok=False,
                duration_ms=5,
                at=epoch_ms(NOW),
            )
        )
        # what 0006 kept (its content is rebuilt from the rows above)
        conn.execute(
            text("INSERT INTO hourly_stats (hour, metric, value) VALUES (0, 'orders:x:usd', 7)")
        )
    engine.dispose()
    return {"orders": orders, "deliveries": deliveries}


async def test_upgrade_from_0007_keeps_orders_deliveries_and_rollups(sql_database_url: str) -> None:
    # the contract fixture migrated to head; start again from 0007 with data in it
    config = alembic_config(sql_database_url)
    await asyncio.to_thread(command.downgrade, config, "0007")
    data = await asyncio.to_thread(_fill_schema_0007, sql_database_url)
    await asyncio.to_thread(upgrade_to_head, sql_database_url)
    await asyncio.to_thread(upgrade_to_head, sql_database_url)  # idempotent

    store = open_test_store(sql_database_url)
    try:
        orders = data["orders"]
        assert isinstance(orders, list)
        async with store.unit_of_work() as uow:
            for order in orders:
                assert await uow.orders.get(order.id) == order
                found = await uow.orders.get_by_payment_intent(order.payment_intent_id)
                assert found is not None and found.id == order.id
        listed = await store.deliveries.list_page(DeliveryFilter(), None, 100)
        assert len(listed) == 9 and {d.status for d in listed} == {DeliveryStatus.PENDING}
        buckets = await figures.order_buckets(store, *WINDOW)
        paid = orders[0]
        assert buckets == OrderBuckets(
            successful=1, pending=1, revenue_minor={"usd": paid.total_minor}
        )
        calls = await figures.call_counts(store, *WINDOW)
        assert (calls["stripe"].calls, calls["stripe"].errors) == (1, 1)
        assert (calls["email"].calls, calls["email"].errors) == (1, 1)
        assert await figures.orders_by_status(store) == {"paid": 1, "pending": 1}
        assert (await figures.outbox_backlog(store, NOW))[0] == 9
    finally:
        await store.close()


async def test_downgrade_and_upgrade_again_keeps_the_figures(sql_database_url: str) -> None:
    store = open_test_store(sql_database_url)
    order = make_order(at=NOW)
    order.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    try:
        async with store.unit_of_work() as uow:
            await uow.orders.add(order)
            await uow.commit()
        before = await figures.order_buckets(store, *WINDOW)
    finally:
        await store.close()
    config = alembic_config(sql_database_url)
    await asyncio.to_thread(command.downgrade, config, "0005")
    await asyncio.to_thread(command.upgrade, config, "head")
    store = open_test_store(sql_database_url)
    try:
        assert await figures.order_buckets(store, *WINDOW) == before
        assert before.successful == 1
    finally:
        await store.close()


def _counter_rows(database_url: str) -> tuple[dict[str, int], int, int, int]:
    """The hourly counters summed per metric, the rows not folded (shard >= 0), the
    folded rows (shard -1) and the days in `daily_counters` (0 when there is no table)."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            sums = {
                row.metric: int(row.value)
                for row in conn.execute(
                    text("SELECT metric, SUM(value) AS value FROM hourly_counters GROUP BY metric")
                )
            }
            unfolded = conn.execute(text("SELECT COUNT(*) FROM hourly_counters WHERE shard >= 0"))
            folded = conn.execute(text("SELECT COUNT(*) FROM hourly_counters WHERE shard = -1"))
            counts = (unfolded.scalar_one(), folded.scalar_one())
            has_days = "daily_counters" in inspect(conn).get_table_names()
            days = (
                conn.execute(text("SELECT COUNT(DISTINCT day) FROM daily_counters")).scalar_one()
                if has_days
                else 0
            )
    finally:
        engine.dispose()
    return sums, counts[0], counts[1], days


async def test_upgrade_to_daily_counters_folds_every_row_and_keeps_the_figures(
    sql_database_url: str,
) -> None:
    """0012 folds what the store wrote at 0011 (rows in every shard) into their days: the
    90-day figure then says what the orders say, and going back down to 0011 gives back
    the same hourly sums."""
    config = alembic_config(sql_database_url)
    await asyncio.to_thread(command.downgrade, config, "0011")
    store = open_test_store(sql_database_url)
    orders = []
    try:
        for hours_ago in (1, 30, 55, 80, 200):
            order = make_order(at=NOW - timedelta(hours=hours_ago))
            if hours_ago % 2:
                order.record_payment_succeeded(order.created_at, EventSource.WEBHOOK)
            async with store.unit_of_work() as uow:  # the write path needs no daily table
                await uow.orders.add(order)
                await uow.commit()
            orders.append(order)
    finally:
        await store.close()
    sums, unfolded, folded, days = await asyncio.to_thread(_counter_rows, sql_database_url)
    assert unfolded > 0 and folded == 0 and days == 0

    await asyncio.to_thread(upgrade_to_head, sql_database_url)
    assert await asyncio.to_thread(_counter_rows, sql_database_url) == (sums, 0, unfolded, 5)
    store = open_test_store(sql_database_url)
    try:
        span = (NOW - timedelta(days=90), NOW + timedelta(minutes=1))
        found = await figures.order_buckets(store, *span)
        assert found == buckets_from(contributions(orders))
        assert found.total == 5 and found.successful == 2
    finally:
        await store.close()

    await asyncio.to_thread(command.downgrade, config, "0011")
    back = await asyncio.to_thread(_counter_rows, sql_database_url)
    assert back[0] == sums and back[2:] == (0, 0)
    await asyncio.to_thread(upgrade_to_head, sql_database_url)
