"""One contract, every store: what services rely on (SQLite, PostgreSQL, DynamoDB).

Every test goes through the `Store` protocol only; backend set-up lives in
`tests/fixtures/stores.py`."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from datetime import datetime, timedelta

import pytest

from orderhub.delivery.leasing import lease_due
from orderhub.delivery.model import (
    DeliveryFilter,
    DeliveryStatus,
    Integration,
    attempt_of,
    delivered,
    delivery_targets,
    failed,
    resync_delivery,
    retried,
)
from orderhub.delivery.model import claimed as claim_of
from orderhub.kit.clock import FrozenClock
from orderhub.kit.ids import new_id
from orderhub.monitoring import figures
from orderhub.monitoring.rollups import CallCounts, OrderBuckets, buckets_from, contributions
from orderhub.monitoring.service import series_bounds
from orderhub.orders.domain import (
    EventSource,
    EventType,
    Order,
    OrderChanges,
    OrderEvent,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from orderhub.store.documents import order_to_document
from orderhub.store.protocol import (
    Alert,
    AlreadyExists,
    ApiKeyRecord,
    ConcurrencyConflict,
    IdempotencyRecord,
    OrderFilter,
    ProviderCall,
    ReconcileRun,
    Store,
    UnitOfWork,
)
from orderhub.store.unit_of_work import Change, update_order
from tests.fixtures.domain import NOW, make_order
from tests.fixtures.stores import (
    change_stored,
    open_test_store,
    replace_event_document,
    stored_event_documents,
)

EVERYWHERE = delivery_targets(list(Integration))


async def _add(store: Store, order: Order) -> None:
    async with store.unit_of_work() as uow:
        await uow.orders.add(order)
        await uow.commit()


async def _get(store: Store, order_id: uuid.UUID) -> Order:
    async with store.unit_of_work() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    return order


def _change(mutate: object) -> Change:
    async def change(order: Order, _uow: UnitOfWork, now: datetime) -> None:
        mutate(order, now)  # type: ignore[operator]

    return change


async def _provider_call(store: Store, ok: bool, at: datetime) -> None:
    await store.monitoring.record_provider_call(
        ProviderCall(new_id(), "stripe", "refund", ok, 5, at)
    )


# -- orders -------------------------------------------------------------------------------


async def test_order_round_trips_with_its_events(store: Store) -> None:
    order = make_order()
    order.record_payment_succeeded(NOW + timedelta(seconds=1), EventSource.WEBHOOK)
    order.record_refund(
        Refund("re_1", 100, "duplicate", RefundStatus.SUCCEEDED, NOW), NOW, EventSource.API
    )
    await _add(store, order)
    async with store.unit_of_work() as uow:
        loaded = await uow.orders.get(order.id)
        history = await uow.orders.history(order.id)
    assert loaded is not None
    assert loaded == dataclasses.replace(order, pending_events=[])
    assert [e.type for e in history] == [
        EventType.CREATED,
        EventType.PAID,
        EventType.PARTIALLY_REFUNDED,
    ]


async def test_a_peeked_order_reads_the_same_and_cannot_be_saved(store: Store) -> None:
    order = make_order()
    await _add(store, order)
    async with store.unit_of_work() as uow:
        peeked = await uow.orders.peek(order.id)
        assert peeked == dataclasses.replace(order, pending_events=[])
        assert await uow.orders.peek(uuid.uuid4()) is None
        with pytest.raises(RuntimeError):  # not read for a change in this unit of work
            await uow.orders.save(peeked)
    async with store.unit_of_work() as uow:
        assert await uow.orders.get(order.id) == peeked


async def test_peek_with_history_reads_the_order_and_its_events_together(store: Store) -> None:
    order = make_order()
    order.record_payment_succeeded(NOW + timedelta(seconds=1), EventSource.WEBHOOK)
    await _add(store, order)
    async with store.unit_of_work() as uow:
        found = await uow.orders.peek_with_history(order.id)
        assert await uow.orders.peek_with_history(uuid.uuid4()) is None
        assert found is not None
        peeked, history = found
        assert peeked == dataclasses.replace(order, pending_events=[])
        assert history == await uow.orders.history(order.id)
        assert [e.type for e in history] == [EventType.CREATED, EventType.PAID]
        with pytest.raises(RuntimeError):  # read only, like peek
            await uow.orders.save(peeked)


async def test_nothing_is_written_without_commit(store: Store) -> None:
    order = make_order()
    async with store.unit_of_work() as uow:
        await uow.orders.add(order)
    async with store.unit_of_work() as uow:
        assert await uow.orders.get(order.id) is None
        assert await uow.orders.get_by_payment_intent(order.payment_intent_id or "") is None
        assert await uow.orders.history(order.id) == []


async def test_duplicate_add_is_already_exists_and_writes_nothing(store: Store) -> None:
    order = make_order()
    await _add(store, order)
    twin = make_order()
    twin.id = order.id
    twin.pending_events = [dataclasses.replace(e, order_id=order.id) for e in twin.pending_events]
    with pytest.raises(AlreadyExists):
        async with store.unit_of_work() as uow:
            await uow.orders.add(twin)
            await uow.commit()
    async with store.unit_of_work() as uow:
        assert len(await uow.orders.history(order.id)) == 1
        assert await uow.orders.get_by_payment_intent(twin.payment_intent_id or "") is None


async def test_stale_version_is_a_conflict_and_changes_nothing(store: Store) -> None:
    order = make_order()
    await _add(store, order)
    async with store.unit_of_work() as stale_uow:
        stale = await stale_uow.orders.get(order.id)
        assert stale is not None
        fresh = await change_stored(store, order.id, lambda o: o.cancel(NOW, EventSource.API))
        assert fresh.version == 2
        stale.record_payment_succeeded(NOW, EventSource.WEBHOOK)
        with pytest.raises(ConcurrencyConflict):  # at save or at commit
            await stale_uow.orders.save(stale)
            await stale_uow.commit()
    async with store.unit_of_work() as uow:
        current = await uow.orders.get(order.id)
        history = await uow.orders.history(order.id)
    assert current is not None and current.status == OrderStatus.CANCELLED
    assert current.version == 2
    assert [e.type for e in history] == [EventType.CREATED, EventType.CANCELLED]
    assert await figures.orders_by_status(store) == {"cancelled": 1}


async def test_an_order_is_found_by_its_intent_right_after_commit(store: Store) -> None:
    for _ in range(5):
        order = make_order()
        await _add(store, order)
        async with store.unit_of_work() as uow:
            found = await uow.orders.get_by_payment_intent(order.payment_intent_id or "")
        assert found is not None and found.id == order.id


async def test_list_page_newest_first_with_filters_and_keyset(store: Store) -> None:
    orders = [make_order("alice" if n % 2 else "bob") for n in range(6)]
    for order in orders:
        await _add(store, order)
    await update_order(
        store,
        FrozenClock(NOW),
        orders[3].id,
        _change(lambda o, now: o.record_payment_succeeded(now, EventSource.WEBHOOK)),
    )
    async with store.unit_of_work() as uow:
        everything = await uow.orders.list_page(OrderFilter(), None, 100)
        alice = await uow.orders.list_page(OrderFilter(customer_id="alice"), None, 100)
        after = await uow.orders.list_page(OrderFilter(), orders[3].id, 2)
        paid = await uow.orders.list_page(OrderFilter(status=OrderStatus.PAID), None, 100)
        alice_pending = await uow.orders.list_page(
            OrderFilter(status=OrderStatus.PENDING, customer_id="alice"), None, 1
        )
        alice_pending_next = await uow.orders.list_page(
            OrderFilter(status=OrderStatus.PENDING, customer_id="alice"), orders[5].id, 5
        )
        none = await uow.orders.list_page(OrderFilter(status=OrderStatus.SHIPPED), None, 100)
    assert [o.id for o in everything] == [o.id for o in reversed(orders)]
    assert [o.id for o in alice] == [orders[5].id, orders[3].id, orders[1].id]
    assert [o.id for o in after] == [orders[2].id, orders[1].id]
    assert [o.id for o in paid] == [orders[3].id]
    # a filter applied after the read still fills the page
    assert [o.id for o in alice_pending] == [orders[5].id]
    assert [o.id for o in alice_pending_next] == [orders[1].id]
    assert none == []


async def test_pagination_under_concurrent_inserts_repeats_and_skips_nothing(
    store: Store,
) -> None:
    first = [make_order() for _ in range(15)]
    for order in first:
        await _add(store, order)
    seen: list[uuid.UUID] = []
    before: uuid.UUID | None = None

    async def insert_more() -> None:
        for _ in range(10):
            await _add(store, make_order())

    inserting = asyncio.create_task(insert_more())
    while True:
        async with store.unit_of_work() as uow:
            page = await uow.orders.list_page(OrderFilter(), before, 4)
        seen.extend(o.id for o in page)
        if len(page) < 4:
            break
        before = page[-1].id
        await asyncio.sleep(0)
    await inserting
    assert len(seen) == len(set(seen))
    old = [o.id for o in first]
    assert [i for i in seen if i in set(old)] == list(reversed(old))


async def test_concurrent_changes_to_one_order_all_apply(store: Store) -> None:
    """Optimistic versions with retry: 20 concurrent edits, none lost, none failed."""
    order = make_order()
    await _add(store, order)
    clock = FrozenClock(NOW)

    def edit(n: int) -> Change:
        return _change(
            lambda current, now: current.apply_changes(
                OrderChanges(metadata={"n": str(n)}), now, EventSource.API
            )
        )

    await asyncio.gather(*(update_order(store, clock, order.id, edit(n)) for n in range(20)))
    async with store.unit_of_work() as uow:
        final = await uow.orders.get(order.id)
        history = await uow.orders.history(order.id)
    assert final is not None and final.version == 21
    assert [e.type for e in history].count(EventType.UPDATED) == 20


async def test_thirty_concurrent_refunds_never_exceed_what_was_paid(store: Store) -> None:
    order = make_order()
    order.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    await _add(store, order)
    share = order.total_minor // 30
    clock = FrozenClock(NOW)
    refused: list[str] = []

    def refund(n: int) -> Change:
        async def change(current: Order, _uow: UnitOfWork, now: datetime) -> None:
            if current.refundable_minor < share + 1:
                refused.append(str(n))
                return
            current.record_refund(
                Refund(f"r{n}", share + 1, None, RefundStatus.PENDING, now), now, EventSource.API
            )

        return change

    await asyncio.gather(*(update_order(store, clock, order.id, refund(n)) for n in range(30)))
    final = await _get(store, order.id)
    fits = order.total_minor // (share + 1)
    assert len(final.refunds) == fits and len(refused) == 30 - fits
    assert final.refunded_minor <= order.total_minor


# -- single records -----------------------------------------------------------------------


async def test_api_keys(store: Store) -> None:
    record = ApiKeyRecord(new_id(), "ci", "oh_abcdef", "a" * 64, NOW, None, None)
    await store.api_keys.add(record)
    assert await store.api_keys.find_active_by_hash("a" * 64) == record
    assert await store.api_keys.find_active_by_hash("b" * 64) is None
    assert await store.api_keys.count_active() == 1
    await store.api_keys.touch(record.id, NOW + timedelta(minutes=5))
    assert await store.api_keys.revoke(record.id, NOW)
    assert not await store.api_keys.revoke(record.id, NOW)
    assert not await store.api_keys.revoke(uuid.uuid4(), NOW)
    assert await store.api_keys.find_active_by_hash("a" * 64) is None
    assert await store.api_keys.count_active() == 0
    (listed,) = await store.api_keys.list_all()
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


async def test_idempotency_claim_complete_release_and_expiry(store: Store) -> None:
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


async def test_concurrent_claims_let_exactly_one_through(store: Store) -> None:
    results = await asyncio.gather(*(store.idempotency.claim(_candidate(), NOW) for _ in range(20)))
    assert sum(1 for claimed, _ in results if claimed) == 1
    assert len({record.resource_id for _, record in results}) == 1


async def test_server_secret_is_stable_and_shared(store: Store, database_url: str) -> None:
    first = await store.server_secret("pagination")
    other = open_test_store(database_url)
    try:
        assert await other.server_secret("pagination") == first
    finally:
        await other.close()
    assert await store.server_secret("another") != first
    assert len(first) == 32


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_webhook_events_begin_once_until_finished(store: Store) -> None:
    assert await store.webhook_events.begin("evt_1", "payment_intent.succeeded", NOW)
    # not finished (applying failed): a retry handles it again
    assert await store.webhook_events.begin("evt_1", "payment_intent.succeeded", NOW)
    await store.webhook_events.finish("evt_1", "applied", None, NOW)
    assert not await store.webhook_events.begin("evt_1", "payment_intent.succeeded", NOW)
    duplicates = await asyncio.gather(
        *(store.webhook_events.begin("evt_2", "charge.refunded", NOW) for _ in range(10))
    )
    assert duplicates.count(True) >= 1  # unfinished: each may apply, handlers are idempotent
    await store.webhook_events.finish("evt_2", "applied", None, NOW)
    assert not await store.webhook_events.begin("evt_2", "charge.refunded", NOW)


async def test_named_leases_have_one_holder(store: Store) -> None:
    later = NOW + timedelta(minutes=1)
    leases = store.leases
    assert await leases.acquire("sheets", "a", later, NOW)
    assert not await leases.acquire("sheets", "b", later, NOW)
    assert await leases.acquire("sheets", "a", later, NOW)  # extends its own
    # expired: anyone may take it
    assert await leases.acquire("sheets", "b", later + timedelta(minutes=1), later)
    await leases.release("sheets", "a")  # not a's any more: no effect
    assert not await leases.acquire("sheets", "a", later, NOW)
    await leases.release("sheets", "b")
    assert await leases.acquire("sheets", "a", later, NOW)
    results = await asyncio.gather(
        *(leases.acquire("other", f"w{n}", later, NOW) for n in range(10))
    )
    assert results.count(True) == 1


# -- outbox -------------------------------------------------------------------------------


async def test_events_write_their_deliveries_in_the_same_commit(database_url: str) -> None:
    store = open_test_store(database_url, EVERYWHERE)
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
        backlog, age = await figures.outbox_backlog(store, NOW + timedelta(seconds=30))
        assert backlog == 3 and 29 <= age <= 31
    finally:
        await store.close()


async def _refunded_in_cents(store: Store, order: Order, count: int) -> None:
    """`count` refunds of one cent, one change each."""
    clock = FrozenClock(NOW)
    for n in range(count):
        refund = Refund(f"refund-{n}", 1, "partial", RefundStatus.SUCCEEDED, NOW, f"re_{n}")
        await update_order(
            store,
            clock,
            order.id,
            _change(lambda o, now, r=refund: o.record_refund(r, now, EventSource.API)),
        )


async def test_an_events_stored_size_does_not_grow_with_the_orders_refunds(
    database_url: str,
) -> None:
    store = open_test_store(database_url, EVERYWHERE)
    try:
        order = make_order()
        order.record_payment_succeeded(NOW, EventSource.WEBHOOK)
        await _add(store, order)
        await _refunded_in_cents(store, order, 100)
        async with store.unit_of_work() as uow:
            history = await uow.orders.history(order.id)
        stored = stored_event_documents(database_url, order.id)
        refunds = [e.id for e in history if e.type == EventType.PARTIALLY_REFUNDED]
        assert len(refunds) == 100
        first, last = len(stored[refunds[0]]), len(stored[refunds[-1]])
        # the 100th refund's event is as small as the first's (a few digits longer)
        assert last - first < 50, (first, last)
    finally:
        await store.close()


async def test_each_delivery_carries_the_order_as_of_its_event(database_url: str) -> None:
    """However the order changed after an event (refunds added, moved forward, failing
    after they succeeded), the event's deliveries carry the order as it was; events stored
    whole by an older orderhub read the same."""
    store = open_test_store(database_url, EVERYWHERE)
    clock = FrozenClock(NOW)
    try:
        order = make_order()
        await _add(store, order)
        as_of = {1: await _get(store, order.id)}
        r1 = Refund("refund-1", 100, "damaged", RefundStatus.REQUESTED, NOW)
        r2 = Refund("refund-2", 200, None, RefundStatus.SUCCEEDED, NOW, provider_id="re_2")
        steps = [
            lambda o, now: o.record_payment_succeeded(now, EventSource.WEBHOOK),
            lambda o, now: o.record_refund(r1, now, EventSource.API),
            lambda o, now: o.record_refund(
                dataclasses.replace(r1, status=RefundStatus.PENDING, provider_id="re_1"),
                now,
                EventSource.PROVIDER,
            ),
            lambda o, now: o.record_refund(r2, now, EventSource.WEBHOOK),
            lambda o, now: o.apply_changes(OrderChanges(tracking_number="TRK1"), now),
            lambda o, now: o.record_refund(
                dataclasses.replace(r1, status=RefundStatus.SUCCEEDED), now, EventSource.WEBHOOK
            ),
            lambda o, now: o.record_refund(
                dataclasses.replace(r2, status=RefundStatus.FAILED), now, EventSource.WEBHOOK
            ),
            lambda o, now: o.apply_changes(OrderChanges(metadata={"k": "w"}), now),
        ]
        for step in steps:
            changed = await update_order(store, clock, order.id, _change(step))
            as_of[changed.version] = await _get(store, order.id)
        assert len(as_of) == len(steps) + 1

        async def delivered(now: datetime) -> dict[uuid.UUID, Order]:
            """Each event's order, as its deliveries carry it."""
            due = await lease_due(store, now, "w", now + timedelta(minutes=1), 500)
            return {d.event.id: d.order for d in due}

        first = await delivered(NOW + timedelta(seconds=1))
        assert set(first) == set(stored_event_documents(database_url, order.id))
        assert first == {event: as_of[o.version] for event, o in first.items()}
        # the older half of the events as an older orderhub stored them: the whole order
        older = sorted(first, key=lambda event: first[event].version)[: len(first) // 2]
        for event in older:
            whole = order_to_document(as_of[first[event].version])
            replace_event_document(database_url, order.id, event, whole)
        assert await delivered(NOW + timedelta(minutes=2)) == first
    finally:
        await store.close()


async def test_two_workers_lease_each_delivery_once(database_url: str) -> None:
    store = open_test_store(database_url, EVERYWHERE)
    try:
        for _ in range(10):
            await _add(store, make_order())
        lease = NOW + timedelta(minutes=1)
        batches = await asyncio.gather(
            *(lease_due(store, NOW, f"w{n}", lease, 7) for n in range(6))
        )
        claimed = [d.delivery.id for batch in batches for d in batch]
        assert len(claimed) == len(set(claimed))
        rest = await lease_due(store, NOW, "w7", lease, 50)
        assert len(claimed) + len(rest) == 30
        # the due one carries its event and the order as of the event
        sample = next(d for batch in batches for d in batch)
        assert sample.event.type == EventType.CREATED
        assert sample.order.id == sample.delivery.order_id
        # leased: nobody gets them again until the lease runs out
        assert await lease_due(store, NOW, "late", lease, 50) == []
        again = await lease_due(store, lease + timedelta(seconds=1), "late", lease, 50)
        assert len(again) == 30
    finally:
        await store.close()


async def test_delivered_failed_dead_and_retried(database_url: str) -> None:
    store = open_test_store(database_url, EVERYWHERE)
    try:
        await _add(store, make_order())
        first, second, third = await lease_due(store, NOW, "w", NOW + timedelta(minutes=1), 10)
        done = delivered(first.delivery, NOW)
        assert await store.deliveries.transition(first.delivery, done, attempt_of(done, NOW, 12))
        # the same transition again: the stored delivery moved on
        assert not await store.deliveries.transition(first.delivery, done)
        retry_at = NOW + timedelta(seconds=2)
        again = failed(second.delivery, "503", retry_at)
        assert await store.deliveries.transition(second.delivery, again, attempt_of(again, NOW, 5))
        dead = failed(third.delivery, "410", None)
        assert await store.deliveries.transition(third.delivery, dead, attempt_of(dead, NOW, 5))
        states = {
            d.delivery.id: await store.deliveries.get(d.delivery.id) for d in (first, second, third)
        }
        assert states[first.delivery.id].status == DeliveryStatus.DELIVERED  # type: ignore[union-attr]
        assert states[second.delivery.id].next_attempt_at == retry_at  # type: ignore[union-attr]
        assert states[third.delivery.id].status == DeliveryStatus.DEAD  # type: ignore[union-attr]
        assert (await figures.outbox_backlog(store, NOW))[0] == 1
        stored_dead = states[third.delivery.id]
        assert stored_dead is not None
        assert await store.deliveries.transition(stored_dead, retried(stored_dead, NOW))
        assert await store.deliveries.next_due_at() == NOW
        assert (await figures.outbox_backlog(store, NOW))[0] == 2
        attempts = await store.deliveries.attempts(second.delivery.id)
        assert [(a.outcome, a.error) for a in attempts] == [("failed", "503")]
        counts = await figures.call_counts(
            store, NOW - timedelta(hours=1), NOW + timedelta(hours=1)
        )
        assert sum(c.calls for c in counts.values()) == 3
        assert sum(c.errors for c in counts.values()) == 2
    finally:
        await store.close()


async def test_dead_deliveries_listed_by_integration_and_creation_time(database_url: str) -> None:
    store = open_test_store(database_url, EVERYWHERE)
    try:
        later = NOW + timedelta(hours=2)
        for at in (NOW, later):
            await _add(store, make_order(at=at))
        due = await lease_due(store, later, "w", later + timedelta(minutes=1), 10)
        assert len(due) == 6
        for item in due:
            if item.delivery.integration != Integration.NOTIFICATIONS:
                dead = failed(item.delivery, "550 no such user", None)
                assert await store.deliveries.transition(item.delivery, dead)
            else:
                done = delivered(item.delivery, later)
                assert await store.deliveries.transition(item.delivery, done)

        async def listed(**wanted: object) -> list[tuple[str, datetime]]:
            rows = await store.deliveries.list_page(
                DeliveryFilter(status=DeliveryStatus.DEAD, **wanted),  # type: ignore[arg-type]
                None,
                10,
            )
            assert all(r.status == DeliveryStatus.DEAD for r in rows)
            return sorted((r.integration.value, r.created_at) for r in rows)

        assert await listed() == [
            ("email", NOW),
            ("email", later),
            ("sheets", NOW),
            ("sheets", later),
        ]
        assert await listed(integration=Integration.EMAIL) == [("email", NOW), ("email", later)]
        since = NOW + timedelta(hours=1)
        assert await listed(created_since=since) == [("email", later), ("sheets", later)]
        assert await listed(created_since=later, integration=Integration.SHEETS) == [
            ("sheets", later)
        ]
        assert await listed(created_since=later + timedelta(milliseconds=1)) == []
        # a page filled past the ones the filter leaves out, and the keyset cursor
        first = await store.deliveries.list_page(
            DeliveryFilter(status=DeliveryStatus.DEAD, integration=Integration.SHEETS), None, 1
        )
        rest = await store.deliveries.list_page(
            DeliveryFilter(status=DeliveryStatus.DEAD, integration=Integration.SHEETS),
            first[0].id,
            10,
        )
        assert [d.created_at for d in first + rest] == [later, NOW]
    finally:
        await store.close()


async def test_added_deliveries_of_stored_events_are_due_and_in_the_backlog(
    database_url: str,
) -> None:
    # the sheet was not configured when the orders were made: their events have no
    # sheet delivery, and a resync adds one per order
    store = open_test_store(database_url, delivery_targets([Integration.EMAIL]))
    try:
        orders = [make_order() for _ in range(3)]
        for order in orders:
            await _add(store, order)
        for due in await lease_due(store, NOW, "w", NOW + timedelta(minutes=1), 10):
            done = delivered(due.delivery, NOW)
            assert await store.deliveries.transition(due.delivery, done)
        assert (await figures.outbox_backlog(store, NOW))[0] == 0
        later = NOW + timedelta(hours=1)
        added = []
        for order in orders:
            history = await _history(store, order.id)
            delivery = resync_delivery(history, Integration.SHEETS, later)
            assert delivery is not None and delivery.event_id == history[-1].id
            added.append(delivery)
        store.outbox_signal.clear()
        await store.deliveries.add(added)
        assert (await figures.outbox_backlog(store, later))[0] == 3
        assert {d.id for d in await store.deliveries.due(later, 10)} == {d.id for d in added}
        loaded = await lease_due(store, later, "w2", later + timedelta(minutes=1), 10)
        assert {(d.order.id, d.event.type) for d in loaded} == {
            (o.id, EventType.CREATED) for o in orders
        }
        assert [await store.deliveries.get(d.id) for d in added] == [
            dataclasses.replace(
                d,
                status=DeliveryStatus.IN_FLIGHT,
                lease_owner="w2",
                lease_until=later + timedelta(minutes=1),
            )
            for d in added
        ]
    finally:
        await store.close()


async def _history(store: Store, order_id: uuid.UUID) -> list[OrderEvent]:
    async with store.unit_of_work() as uow:
        return await uow.orders.history(order_id)


async def test_lost_attempts_count_and_a_crash_loop_ends_dead(database_url: str) -> None:
    store = open_test_store(database_url, EVERYWHERE)
    try:
        await _add(store, make_order())
        lease = timedelta(minutes=1)
        assert len(await lease_due(store, NOW, "w1", NOW + lease, 10)) == 3
        # w1 died; w2 takes over after the lease: the lost attempt is counted
        later = NOW + lease + timedelta(seconds=1)
        taken = await lease_due(
            store, later, "w2", later + lease, 10, give_up_before=NOW - timedelta(hours=24)
        )
        assert len(taken) == 3
        assert {d.delivery.attempts for d in taken} == {1}
        # w2 died too, and the event is now too old: dead, not leased
        much_later = NOW + timedelta(hours=25)
        assert (
            await lease_due(
                store,
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
        assert (await figures.outbox_backlog(store, much_later))[0] == 0
    finally:
        await store.close()


# -- metrics ------------------------------------------------------------------------------


async def test_order_buckets_and_revenue(store: Store) -> None:
    paid = make_order()
    paid.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    paid.record_refund(Refund("r", 999, None, RefundStatus.SUCCEEDED, NOW), NOW, EventSource.API)
    failed_order = make_order()
    failed_order.record_payment_failed(NOW, EventSource.WEBHOOK)
    cancelled = make_order()
    cancelled.cancel(NOW, EventSource.API)
    for order in (paid, failed_order, cancelled, make_order()):
        await _add(store, order)
    window = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    buckets = await figures.order_buckets(store, *window)
    assert buckets == OrderBuckets(1, 1, 1, 1, {"usd": paid.total_minor - 999})
    empty = await figures.order_buckets(store, NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    assert empty.total == 0
    assert await figures.orders_by_status(store) == {
        "paid": 1,
        "pending": 2,
        "cancelled": 1,
    }


async def _mixed_history(store: Store, seed: int = 7, count: int = 40) -> list[uuid.UUID]:
    """Orders over six hours, some paid (some refunded), failed or cancelled afterwards
    through a second unit of work, and provider calls beside them. Deterministic."""
    rng = random.Random(seed)
    ids = []
    for n in range(count):
        at = NOW - timedelta(minutes=rng.randrange(0, 6 * 60), seconds=rng.randrange(60))
        order = make_order(at=at)
        await _add(store, order)
        ids.append(order.id)

        def mutate(current: Order, _now: datetime, n: int = n, at: datetime = at) -> None:
            if n % 4 == 0:
                current.record_payment_succeeded(at, EventSource.WEBHOOK)
                if n % 8 == 0:
                    current.record_refund(
                        Refund(f"r{n}", 100, None, RefundStatus.SUCCEEDED, at),
                        at,
                        EventSource.API,
                    )
            elif n % 4 == 1:
                current.record_payment_failed(at, EventSource.WEBHOOK)
            elif n % 4 == 2:
                current.cancel(at, EventSource.API)

        await update_order(store, FrozenClock(at), order.id, _change(mutate))
        await _provider_call(store, n % 5 != 0, at)
    return ids


async def test_counters_agree_with_the_orders_over_any_range(store: Store) -> None:
    """Whole hours from counters kept with every write, partial hours from raw rows: over
    any range they say what counting the orders themselves says."""
    ids = await _mixed_history(store)
    orders = [await _get(store, i) for i in ids]
    rng = random.Random(11)
    for _ in range(15):
        start = NOW - timedelta(minutes=rng.randrange(0, 7 * 60))
        end = start + timedelta(minutes=rng.randrange(1, 7 * 60))
        inside = [o for o in orders if start <= o.created_at < end]
        assert await figures.order_buckets(store, start, end) == buckets_from(
            contributions(inside)
        ), (start, end)


@pytest.mark.parametrize("step", [timedelta(minutes=5), timedelta(hours=1), timedelta(days=1)])
async def test_a_series_says_what_each_of_its_points_says_alone(
    store: Store, step: timedelta
) -> None:
    """A series is read for its whole range at once; each point still says what the
    metrics of its own range say."""
    await _mixed_history(store, seed=5, count=30)
    start, end = NOW - timedelta(hours=6, minutes=17), NOW + timedelta(minutes=3)
    if step == timedelta(minutes=5):
        start = NOW - timedelta(hours=2, minutes=2)
    points = series_bounds(start, end, step)
    series = await figures.series_figures(store, points, step // timedelta(milliseconds=1))
    alone = [
        (await figures.order_buckets(store, lo, hi), await figures.call_counts(store, lo, hi))
        for lo, hi in points
    ]
    assert series == alone
    assert (
        sum(buckets.total for buckets, _calls in series)
        == (await figures.order_buckets(store, start, end)).total
    )


async def test_metrics_of_the_same_data_are_the_same_on_every_store(store: Store) -> None:
    """Fixed data, fixed figures: every backend must give exactly these."""
    await _mixed_history(store, seed=3, count=24)
    window = (NOW - timedelta(hours=5, minutes=30), NOW + timedelta(minutes=1))
    buckets = await figures.order_buckets(store, *window)
    calls = await figures.call_counts(store, *window)
    reference = await _reference_figures(window)
    assert (buckets, calls) == reference
    assert sum((await figures.orders_by_status(store)).values()) == 24


async def _reference_figures(
    window: tuple[datetime, datetime],
) -> tuple[OrderBuckets, dict[str, CallCounts]]:
    """The same data on a throw-away SQLite store, computed from the orders themselves."""
    import tempfile
    from pathlib import Path

    from orderhub.store.sql.migrate import upgrade_to_head

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'reference.db'}"
        await asyncio.to_thread(upgrade_to_head, url)
        reference = open_test_store(url)
        try:
            ids = await _mixed_history(reference, seed=3, count=24)
            orders = [await _get(reference, i) for i in ids]
            inside = [o for o in orders if window[0] <= o.created_at < window[1]]
            calls = await figures.call_counts(reference, *window)
        finally:
            await reference.close()
    return buckets_from(contributions(inside)), calls


async def test_status_gauges_follow_every_change(store: Store) -> None:
    order = make_order()
    await _add(store, order)
    clock = FrozenClock(NOW)
    await update_order(
        store,
        clock,
        order.id,
        _change(lambda o, now: o.record_payment_succeeded(now, EventSource.WEBHOOK)),
    )
    await update_order(
        store, clock, order.id, _change(lambda o, now: o.cancel(now, EventSource.API))
    )
    assert await figures.orders_by_status(store) == {"cancelled": 1}
    final = await _get(store, order.id)
    assert final.payment_status == PaymentStatus.COMPLETED


# -- reconciliation runs ------------------------------------------------------------------


def _run(started: datetime, checkpoint: datetime | None = None, **counts: int) -> ReconcileRun:
    return ReconcileRun(
        id=new_id(),
        started_at=started,
        finished_at=started + timedelta(seconds=3),
        checked=counts.get("checked", 0),
        changed=counts.get("changed", 0),
        errors=counts.get("errors", 0),
        error="Stripe could not be reached" if counts.get("errors") else None,
        checkpoint=checkpoint,
    )


async def test_reconcile_runs_newest_first_and_pruned(store: Store) -> None:
    runs = store.reconcile_runs
    assert await runs.latest() is None
    assert await runs.recent(NOW - timedelta(days=60), 10) == []
    old = _run(NOW - timedelta(days=31), checked=5)
    middle = _run(NOW - timedelta(hours=1), NOW - timedelta(hours=1), checked=7, changed=2)
    last = _run(NOW, None, checked=3, errors=1)
    for run in (middle, old, last):
        await runs.record(run)
    assert await runs.latest() == last
    assert await runs.recent(NOW - timedelta(days=60), 10) == [last, middle, old]
    assert await runs.recent(NOW - timedelta(hours=2), 1) == [last]
    assert await runs.recent(NOW - timedelta(hours=2), 10) == [last, middle]
    await runs.prune(NOW - timedelta(days=30))
    # pruned (SQL) or left to the TTL (DynamoDB): never listed past the window asked for
    assert old not in await runs.recent(NOW - timedelta(days=30), 10)
    assert await runs.latest() == last


# -- alerts -------------------------------------------------------------------------------


def _alert(created: datetime, channel: str = "webhook") -> Alert:
    return Alert(
        id=new_id(),
        subject="email",
        kind="delivery_dead",
        message="3 email deliveries are dead",
        channel=channel,
        status="pending",
        attempts=0,
        next_attempt_at=created,
        last_error=None,
        created_at=created,
    )


async def test_alerts_wait_until_sent(store: Store) -> None:
    first, second = _alert(NOW), _alert(NOW + timedelta(seconds=1), "email")
    await store.alerts.add([second, first])
    assert await store.alerts.due(NOW - timedelta(seconds=1), 10) == []
    assert await store.alerts.due(NOW + timedelta(seconds=5), 10) == [first, second]
    assert await store.alerts.due(NOW + timedelta(seconds=5), 1) == [first]
    later = dataclasses.replace(
        first, attempts=1, next_attempt_at=NOW + timedelta(minutes=1), last_error="HTTP 503"
    )
    await store.alerts.save(later)
    await store.alerts.save(dataclasses.replace(second, status="sent", attempts=1))
    assert await store.alerts.due(NOW + timedelta(seconds=5), 10) == []
    assert await store.alerts.due(NOW + timedelta(minutes=2), 10) == [later]


# -- batched delivery transitions ---------------------------------------------------------


async def test_a_batch_of_transitions_writes_each_on_its_own_condition(
    database_url: str,
) -> None:
    store = open_test_store(database_url, EVERYWHERE)
    try:
        await _add(store, make_order())
        first, second, third = await lease_due(store, NOW, "w", NOW + timedelta(minutes=1), 10)
        # another worker took the second over meanwhile (its lease "ran out")
        stolen = dataclasses.replace(second.delivery, lease_owner="other")
        assert await store.deliveries.transition(second.delivery, stolen)
        done = [delivered(d.delivery, NOW) for d in (first, second)]
        dead = failed(third.delivery, "410", None)
        written = await store.deliveries.transition_many(
            [
                (first.delivery, done[0], attempt_of(done[0], NOW, 3)),
                (second.delivery, done[1], attempt_of(done[1], NOW, 3)),
                (third.delivery, dead, attempt_of(dead, NOW, 3)),
            ]
        )
        assert written == [True, False, True]
        states = [await store.deliveries.get(d.delivery.id) for d in (first, second, third)]
        assert [s.status if s else None for s in states] == [
            DeliveryStatus.DELIVERED,
            DeliveryStatus.IN_FLIGHT,
            DeliveryStatus.DEAD,
        ]
        assert states[1] == stolen
        # the attempts and counters of the written ones only
        assert [
            len(await store.deliveries.attempts(d.delivery.id)) for d in (first, second, third)
        ] == [1, 0, 1]
        counts = await figures.call_counts(
            store, NOW - timedelta(hours=1), NOW + timedelta(hours=1)
        )
        assert sum(c.calls for c in counts.values()) == 2
        assert sum(c.errors for c in counts.values()) == 1
        assert (await figures.outbox_backlog(store, NOW))[0] == 1
        assert await store.deliveries.transition_many([]) == []
    finally:
        await store.close()


async def test_leasing_a_batch_lets_the_first_worker_win_and_counts_lost_attempts(
    database_url: str,
) -> None:
    store = open_test_store(database_url, EVERYWHERE)
    try:
        for _ in range(4):
            await _add(store, make_order())
        lease = timedelta(minutes=1)
        # w1 takes some, then dies; the others stay pending
        lost = await lease_due(store, NOW, "w1", NOW + lease, 5)
        assert len(lost) == 5
        later = NOW + lease + timedelta(seconds=1)
        candidates = await store.deliveries.due(later, 50)
        assert len(candidates) == 12
        # a rival leases one of the pending ones between the read and the batch's write
        rival = next(c for c in candidates if c.status == DeliveryStatus.PENDING)
        assert await store.deliveries.transition(
            rival, claim_of(rival, "rival", later + lease, None)
        )
        changes = [(c, claim_of(c, "w2", later + lease, None), None) for c in candidates]
        written = await store.deliveries.transition_many(changes)
        assert written == [c.id != rival.id for c in candidates]
        stored = {c.id: await store.deliveries.get(c.id) for c in candidates}
        assert stored[rival.id].lease_owner == "rival"  # type: ignore[union-attr]
        taken_over = {d.delivery.id for d in lost}
        for c in candidates:
            if c.id == rival.id:
                continue
            got = stored[c.id]
            assert got is not None and got.lease_owner == "w2"
            assert got.status == DeliveryStatus.IN_FLIGHT
            assert got.lease_until == later + lease
            assert got.attempts == (1 if c.id in taken_over else 0)
        assert (await figures.outbox_backlog(store, later))[0] == 12
    finally:
        await store.close()
