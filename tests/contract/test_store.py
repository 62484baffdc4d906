"""One contract, every store: what services rely on (SPEC §12)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from orderhub.kit.clock import FrozenClock
from orderhub.kit.ids import new_id
from orderhub.orders.changes import Change, change_order
from orderhub.orders.domain import (
    Address,
    Amounts,
    EventSource,
    EventType,
    LineItem,
    Order,
    OrderChanges,
    OrderDraft,
    OrderStatus,
    Refund,
    RefundStatus,
)
from orderhub.store.protocol import (
    AlreadyExists,
    ApiKeyRecord,
    CallCounts,
    ConcurrencyConflict,
    IdempotencyRecord,
    OrderFilter,
)
from orderhub.store.sql.store import SqlStore

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
ADDRESS = Address("1 Main St", "Springfield", "", "12345", "USA")


def make_order(customer_id: str = "cust_1", **draft_changes: object) -> Order:
    draft = OrderDraft(
        customer_id=customer_id,
        customer_email="a@example.com",
        customer_name="Ann",
        amounts=Amounts("usd", (LineItem("i1", "Thing", 2, 1999),), 500, 100, 50),
        shipping_address=ADDRESS,
        billing_address=None,
        metadata={"k": "v"},
    )
    draft = dataclasses.replace(draft, **draft_changes)  # type: ignore[arg-type]
    return Order.create(
        new_id(), draft, payment_provider="sandbox", payment_intent_id="pi_1", now=NOW
    )


async def _add(store: SqlStore, order: Order) -> None:
    async with store.unit_of_work() as uow:
        await uow.orders.add(order)
        await uow.commit()


async def test_order_round_trips_with_its_events(store: SqlStore) -> None:
    order = make_order()
    order.record_payment_succeeded(NOW + timedelta(seconds=1), EventSource.WEBHOOK)
    order.record_refund(
        Refund("re_1", 100, "duplicate", RefundStatus.SUCCEEDED, NOW), NOW, EventSource.API
    )
    await _add(store, order)
    async with store.unit_of_work(read_only=True) as uow:
        loaded = await uow.orders.get(order.id)
        history = await uow.orders.history(order.id)
    assert loaded is not None
    assert loaded == dataclasses.replace(order, pending_events=[])
    assert [e.type for e in history] == [
        EventType.CREATED,
        EventType.PAID,
        EventType.PARTIALLY_REFUNDED,
    ]
    assert history[1].source == EventSource.WEBHOOK
    assert history[0].at == NOW


async def test_nothing_is_written_without_commit(store: SqlStore) -> None:
    order = make_order()
    async with store.unit_of_work() as uow:
        await uow.orders.add(order)
    async with store.unit_of_work(read_only=True) as uow:
        assert await uow.orders.get(order.id) is None
        assert await uow.orders.history(order.id) == []


async def test_duplicate_add_is_already_exists_and_writes_no_events(store: SqlStore) -> None:
    order = make_order()
    await _add(store, order)
    twin = make_order()
    twin.id = order.id
    twin.pending_events = [dataclasses.replace(e, order_id=order.id) for e in twin.pending_events]
    async with store.unit_of_work() as uow:
        with pytest.raises(AlreadyExists):
            await uow.orders.add(twin)
        await uow.commit()
    async with store.unit_of_work(read_only=True) as uow:
        assert len(await uow.orders.history(order.id)) == 1


async def test_stale_version_is_a_conflict_and_changes_nothing(store: SqlStore) -> None:
    order = make_order()
    await _add(store, order)
    async with store.unit_of_work(read_only=True) as uow:
        stale = await uow.orders.get(order.id)
    assert stale is not None
    async with store.unit_of_work() as uow:
        fresh = await uow.orders.get(order.id)
        assert fresh is not None
        fresh.cancel(NOW, EventSource.API)
        await uow.orders.save(fresh)
        await uow.commit()
    assert fresh.version == 2
    stale.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    async with store.unit_of_work() as uow:
        with pytest.raises(ConcurrencyConflict):
            await uow.orders.save(stale)
    async with store.unit_of_work(read_only=True) as uow:
        current = await uow.orders.get(order.id)
        history = await uow.orders.history(order.id)
    assert current is not None and current.status == OrderStatus.CANCELLED
    assert current.version == 2
    assert [e.type for e in history] == [EventType.CREATED, EventType.CANCELLED]


async def test_list_page_newest_first_with_filters_and_keyset(store: SqlStore) -> None:
    orders = [make_order("alice" if n % 2 else "bob") for n in range(6)]
    for order in orders:
        await _add(store, order)
    async with store.unit_of_work(read_only=True) as uow:
        everything = await uow.orders.list_page(OrderFilter(), None, 100)
        alice = await uow.orders.list_page(OrderFilter(customer_id="alice"), None, 100)
        after = await uow.orders.list_page(OrderFilter(), orders[3].id, 2)
        none = await uow.orders.list_page(OrderFilter(status=OrderStatus.PAID), None, 100)
    assert [o.id for o in everything] == [o.id for o in reversed(orders)]
    assert [o.id for o in alice] == [orders[5].id, orders[3].id, orders[1].id]
    assert [o.id for o in after] == [orders[2].id, orders[1].id]
    assert none == []


async def test_api_keys(store: SqlStore) -> None:
    record = ApiKeyRecord(new_id(), "ci", "oh_abcdef", "a" * 64, NOW, None, None)
    async with store.unit_of_work() as uow:
        await uow.api_keys.add(record)
        await uow.commit()
    async with store.unit_of_work() as uow:
        assert await uow.api_keys.find_active_by_hash("a" * 64) == record
        assert await uow.api_keys.find_active_by_hash("b" * 64) is None
        assert await uow.api_keys.count_active() == 1
        await uow.api_keys.touch(record.id, NOW + timedelta(minutes=5))
        assert await uow.api_keys.revoke(record.id, NOW)
        assert not await uow.api_keys.revoke(record.id, NOW)
        assert not await uow.api_keys.revoke(uuid.uuid4(), NOW)
        await uow.commit()
    async with store.unit_of_work(read_only=True) as uow:
        assert await uow.api_keys.find_active_by_hash("a" * 64) is None
        assert await uow.api_keys.count_active() == 0
        (listed,) = await uow.api_keys.list_all()
    assert listed.revoked_at == NOW and listed.last_used_at == NOW + timedelta(minutes=5)


def _candidate(fingerprint: str = "f1", lock_seconds: int = 60) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope="caller",
        key="k",
        fingerprint=fingerprint,
        resource_id=new_id(),
        status_code=None,
        response_body=None,
        locked_until=NOW + timedelta(seconds=lock_seconds),
        expires_at=NOW + timedelta(hours=24),
    )


async def test_idempotency_claim_complete_release_and_expiry(store: SqlStore) -> None:
    repo = store.idempotency
    first = _candidate()
    claimed, record = await repo.claim(first, NOW)
    assert claimed and record.resource_id == first.resource_id
    # in flight: not claimed, the stored record comes back
    claimed, record = await repo.claim(_candidate(), NOW)
    assert not claimed and record.resource_id == first.resource_id
    # released after a 5xx: the same request takes it over, keeping the resource id
    await repo.release("caller", "k", forget=False)
    claimed, record = await repo.claim(_candidate(), NOW)
    assert claimed and record.resource_id == first.resource_id
    # a different request cannot take it over
    await repo.release("caller", "k", forget=False)
    claimed, record = await repo.claim(_candidate("other"), NOW)
    assert not claimed and record.fingerprint == "f1"
    # completed: replayable
    await repo.complete("caller", "k", 201, b'{"ok":true}', NOW + timedelta(hours=24))
    claimed, record = await repo.claim(_candidate(), NOW + timedelta(hours=1))
    assert not claimed and record.status_code == 201 and record.response_body == b'{"ok":true}'
    # expired: as good as new
    later = NOW + timedelta(hours=25)
    fresh = dataclasses.replace(_candidate("f2"), expires_at=later + timedelta(hours=24))
    claimed, record = await repo.claim(fresh, later)
    assert claimed and record.fingerprint == "f2"
    # forgotten (after a 400): anything may use the key again
    await repo.release("caller", "k", forget=True)
    claimed, record = await repo.claim(_candidate("f3"), NOW)
    assert claimed and record.fingerprint == "f3"


async def test_concurrent_claims_let_exactly_one_through(store: SqlStore) -> None:
    results = await asyncio.gather(*(store.idempotency.claim(_candidate(), NOW) for _ in range(20)))
    assert sum(1 for claimed, _ in results if claimed) == 1
    assert len({record.resource_id for _, record in results}) == 1


async def test_server_secret_is_stable_and_shared(store: SqlStore, database_url: str) -> None:
    first = await store.server_secret("pagination")
    other = SqlStore(database_url)
    try:
        assert await other.server_secret("pagination") == first
    finally:
        await other.close()
    assert await store.server_secret("another") != first
    assert len(first) == 32


async def test_concurrent_changes_to_one_order_all_apply(store: SqlStore) -> None:
    """Optimistic versions with retry: 20 concurrent edits, none lost, none failed."""
    order = make_order()
    await _add(store, order)
    clock = FrozenClock(NOW)

    def edit(n: int) -> Change:
        async def change(current: Order, _uow: object, now: datetime) -> None:
            current.apply_changes(OrderChanges(metadata={"n": str(n)}), now, EventSource.API)

        return change

    await asyncio.gather(*(change_order(store, clock, order.id, edit(n)) for n in range(20)))
    async with store.unit_of_work(read_only=True) as uow:
        final = await uow.orders.get(order.id)
        history = await uow.orders.history(order.id)
    assert final is not None and final.version == 21
    assert [e.type for e in history].count(EventType.UPDATED) == 20


async def test_ping(store: SqlStore) -> None:
    await store.ping()


# -- outbox -----------------------------------------------------------------------------


async def _store_with_targets(database_url: str) -> SqlStore:
    from orderhub.delivery.model import Integration, delivery_targets

    return SqlStore(database_url, delivery_targets(list(Integration)))


async def test_events_write_their_deliveries_in_the_same_commit(database_url: str) -> None:
    from orderhub.delivery.model import DeliveryFilter, DeliveryStatus

    store = await _store_with_targets(database_url)
    try:
        order = make_order()
        async with store.unit_of_work() as uow:
            await uow.orders.add(order)
            # not committed: no delivery visible anywhere
        assert await store.deliveries.list_page(DeliveryFilter(), None, 10) == []
        await _add(store, make_order())
        rows = await store.deliveries.list_page(DeliveryFilter(), None, 10)
        assert sorted(d.integration.value for d in rows) == ["email", "notifications", "sheets"]
        assert {d.status for d in rows} == {DeliveryStatus.PENDING}
        assert store.outbox_signal.is_set()
    finally:
        await store.close()


async def test_concurrent_claims_lease_each_delivery_once(database_url: str) -> None:
    store = await _store_with_targets(database_url)
    try:
        for _ in range(10):
            await _add(store, make_order())
        lease = NOW + timedelta(minutes=1)
        batches = await asyncio.gather(
            *(store.deliveries.claim_due(NOW, f"w{n}", lease, 7) for n in range(6))
        )
        claimed = [d.delivery.id for batch in batches for d in batch]
        assert len(claimed) == len(set(claimed)) == 30
        # the due one carries its event and the order as of the event
        sample = batches[0][0] if batches[0] else next(b[0] for b in batches if b)
        assert sample.event.type == EventType.CREATED
        assert sample.order_document["id"] == str(sample.delivery.order_id)
        # leased: nobody gets them again until the lease runs out
        assert await store.deliveries.claim_due(NOW, "late", lease, 50) == []
        again = await store.deliveries.claim_due(lease + timedelta(seconds=1), "late", lease, 50)
        assert len(again) == 30
    finally:
        await store.close()


async def test_complete_fail_and_retry_dead(database_url: str) -> None:
    from orderhub.delivery.model import DeliveryStatus

    store = await _store_with_targets(database_url)
    try:
        await _add(store, make_order())
        first, second, third = await store.deliveries.claim_due(
            NOW, "w", NOW + timedelta(minutes=1), 10
        )
        assert await store.deliveries.complete(first.delivery.id, "w", NOW, 12)
        assert not await store.deliveries.complete(first.delivery.id, "w", NOW, 12)
        retry_at = NOW + timedelta(seconds=2)
        assert await store.deliveries.fail(second.delivery.id, "w", NOW, 5, "503", retry_at)
        assert await store.deliveries.fail(third.delivery.id, "w", NOW, 5, "410", None)
        got = {d.delivery.id: d for d in (first, second, third)}
        states = {i: await store.deliveries.get(i) for i in got}
        assert states[first.delivery.id].status == DeliveryStatus.DELIVERED  # type: ignore[union-attr]
        assert states[second.delivery.id].next_attempt_at == retry_at  # type: ignore[union-attr]
        assert states[third.delivery.id].status == DeliveryStatus.DEAD  # type: ignore[union-attr]
        assert not await store.deliveries.retry_dead(second.delivery.id, NOW)
        assert await store.deliveries.retry_dead(third.delivery.id, NOW)
        assert await store.deliveries.next_due_at() == NOW
        counts = await store.monitoring.call_counts(
            NOW - timedelta(hours=1), NOW + timedelta(hours=1)
        )
        assert sum(c.calls for c in counts.values()) == 4  # every attempt, lease lost or not
        assert sum(c.errors for c in counts.values()) == 2
    finally:
        await store.close()


async def test_webhook_events_begin_once_until_finished(store: SqlStore) -> None:
    assert await store.webhook_events.begin("evt_1", "payment_intent.succeeded", NOW)
    # not finished (applying failed): a retry handles it again
    assert await store.webhook_events.begin("evt_1", "payment_intent.succeeded", NOW)
    await store.webhook_events.finish("evt_1", "applied", None, NOW)
    assert not await store.webhook_events.begin("evt_1", "payment_intent.succeeded", NOW)


async def test_order_buckets_and_revenue(store: SqlStore) -> None:
    paid = make_order()
    paid.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    paid.record_refund(Refund("r", 999, None, RefundStatus.SUCCEEDED, NOW), NOW, EventSource.API)
    failed = make_order()
    failed.record_payment_failed(NOW, EventSource.WEBHOOK)
    cancelled = make_order()
    cancelled.cancel(NOW, EventSource.API)
    for order in (paid, failed, cancelled, make_order()):
        await _add(store, order)
    buckets = await store.monitoring.order_buckets(
        NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    )
    assert (buckets.successful, buckets.failed, buckets.pending, buckets.cancelled) == (1, 1, 1, 1)
    assert buckets.revenue_minor == {"usd": paid.total_minor - 999}
    empty = await store.monitoring.order_buckets(NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    assert (empty.successful, empty.pending) == (0, 0)


async def test_rollups_agree_with_the_orders_over_any_range(store: SqlStore) -> None:
    """Metrics read whole hours from rollups kept with every write; over any range they
    must say what counting the orders themselves says."""
    import random

    from orderhub.store.sql.store import _raw_call_stats, _raw_order_stats

    rng = random.Random(7)
    moments = [NOW - timedelta(minutes=rng.randrange(0, 6 * 60)) for _ in range(40)]
    for n, at in enumerate(moments):
        order = make_order()
        order.created_at = order.updated_at = at
        order.pending_events = [dataclasses.replace(e, at=at) for e in order.pending_events]
        await _add(store, order)
        async with store.unit_of_work() as uow:
            current = await uow.orders.get(order.id)
            assert current is not None
            if n % 4 == 0:
                current.record_payment_succeeded(at, EventSource.WEBHOOK)
                if n % 8 == 0:
                    current.record_refund(
                        Refund(f"r{n}", 100, None, RefundStatus.SUCCEEDED, at), at, EventSource.API
                    )
            elif n % 4 == 1:
                current.record_payment_failed(at, EventSource.WEBHOOK)
            elif n % 4 == 2:
                current.cancel(at, EventSource.API)
            if current.dirty:
                await uow.orders.save(current)
                await uow.commit()
        await store.monitoring.record_provider_call("stripe", "create_intent", n % 5 != 0, 3, at)
    for _ in range(15):
        start = NOW - timedelta(minutes=rng.randrange(0, 7 * 60))
        end = start + timedelta(minutes=rng.randrange(1, 7 * 60))
        buckets = await store.monitoring.order_buckets(start, end)
        calls = await store.monitoring.call_counts(start, end)
        async with store.unit_of_work(read_only=True) as uow:
            from orderhub.kit.clock import epoch_ms

            raw = await _raw_order_stats(uow.connection, epoch_ms(start), epoch_ms(end))
            raw_calls = await _raw_call_stats(uow.connection, epoch_ms(start), epoch_ms(end))
        for bucket in ("successful", "failed", "pending", "cancelled"):
            expected = sum(v for k, v in raw.items() if k.startswith(f"orders:{bucket}:"))
            assert getattr(buckets, bucket) == expected, (bucket, start, end)
        expected_revenue = {k.split(":")[1]: v for k, v in raw.items() if k.startswith("revenue:")}
        assert (buckets.revenue_minor or {}) == expected_revenue
        assert calls.get("stripe", CallCounts(0, 0)) == CallCounts(
            raw_calls.get("calls:stripe", 0), raw_calls.get("errors:stripe", 0)
        )


async def test_named_leases_have_one_holder(store: SqlStore) -> None:
    later = NOW + timedelta(minutes=1)
    assert await store.deliveries.acquire_lease("sheets", "a", later, NOW)
    assert not await store.deliveries.acquire_lease("sheets", "b", later, NOW)
    assert await store.deliveries.acquire_lease("sheets", "a", later, NOW)  # extends its own
    # expired: anyone may take it
    assert await store.deliveries.acquire_lease("sheets", "b", later + timedelta(minutes=1), later)
    await store.deliveries.release_lease("sheets", "a")  # not a's any more: no effect
    assert not await store.deliveries.acquire_lease("sheets", "a", later, NOW)
    await store.deliveries.release_lease("sheets", "b")
    assert await store.deliveries.acquire_lease("sheets", "a", later, NOW)
    results = await asyncio.gather(
        *(store.deliveries.acquire_lease("other", f"w{n}", later, NOW) for n in range(10))
    )
    assert results.count(True) == 1


async def test_migration_backfills_rollups_from_stored_rows(database_url: str) -> None:
    """Upgrading a store that already holds orders and attempts builds their rollups."""
    from alembic import command

    from orderhub.store.sql.migrate import alembic_config

    store = SqlStore(database_url)
    try:
        paid = make_order()
        paid.record_payment_succeeded(NOW, EventSource.WEBHOOK)
        for order in (paid, make_order()):
            await _add(store, order)
        await store.monitoring.record_provider_call("stripe", "refund", False, 5, NOW)
        window = (NOW - timedelta(hours=3), NOW + timedelta(hours=3))
        before = await store.monitoring.order_buckets(*window)
        calls_before = await store.monitoring.call_counts(*window)
    finally:
        await store.close()
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0005")
    await asyncio.to_thread(command.upgrade, config, "head")
    store = SqlStore(database_url)
    try:
        assert await store.monitoring.order_buckets(*window) == before
        assert await store.monitoring.call_counts(*window) == calls_before
        assert (before.successful, before.pending) == (1, 1)
    finally:
        await store.close()


async def test_lost_attempts_count_and_a_crash_loop_ends_dead(database_url: str) -> None:
    from orderhub.delivery.model import DeliveryStatus

    store = await _store_with_targets(database_url)
    try:
        await _add(store, make_order())
        lease = timedelta(minutes=1)
        assert len(await store.deliveries.claim_due(NOW, "w1", NOW + lease, 10)) == 3
        # w1 died; w2 takes over after the lease: the lost attempt is counted
        later = NOW + lease + timedelta(seconds=1)
        taken = await store.deliveries.claim_due(
            later, "w2", later + lease, 10, give_up_before=NOW - timedelta(hours=24)
        )
        assert len(taken) == 3
        assert {d.delivery.attempts for d in taken} == {1}
        # w2 died too, and the event is now too old: dead, not claimed
        much_later = NOW + timedelta(hours=25)
        assert (
            await store.deliveries.claim_due(
                much_later,
                "w3",
                much_later + lease,
                10,
                give_up_before=much_later - timedelta(hours=24),
            )
            == []
        )
        for due in taken:
            dead = await store.deliveries.get(due.delivery.id)
            assert dead is not None and dead.status == DeliveryStatus.DEAD
            assert dead.attempts == 2
            assert "never finished" in (dead.last_error or "")
    finally:
        await store.close()
