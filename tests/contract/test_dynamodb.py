"""What only the DynamoDB store must show: its table design is made idempotently, it
never Scans, concurrent orders never touch a common item, a transaction too large for
DynamoDB is refused before it is sent, and the counter journal folds without changing
any answer."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from orderhub.delivery.model import (
    DeliveryFilter,
    DeliveryStatus,
    Integration,
    attempt_of,
    claimed,
    delivered,
    delivery_targets,
    failed,
)
from orderhub.kit.clock import epoch_ms
from orderhub.kit.ids import new_id
from orderhub.monitoring import figures
from orderhub.monitoring.rollups import (
    HOUR_MS,
    OrderBuckets,
    buckets_from,
    contributions,
    hour_of,
)
from orderhub.orders.domain import (
    EventSource,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
)
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import add_request_hook, add_response_hook
from orderhub.store.dynamodb.migrate import _backfill_daily_totals, create_tables
from orderhub.store.dynamodb.store import DynamoStore
from orderhub.store.protocol import (
    ErrorEntry,
    OrderFilter,
    ProbeResult,
    ProviderCall,
    StoreError,
)
from tests.fixtures.domain import NOW, make_order
from tests.fixtures.peers import REGION
from tests.fixtures.stores import change_stored

EVERYTHING = (0, 2**50)
BUSY = 12  # orders (a third of them paid) and provider calls (a quarter failing) per round


@pytest.fixture
async def dynamo(dynamodb_url: str) -> AsyncIterator[DynamoStore]:
    store = DynamoStore(dynamodb_url, REGION, delivery_targets(list(Integration)))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def transactions() -> Iterator[list[dict[str, Any]]]:
    """Every TransactWriteItems request sent while the test runs."""
    sent: list[dict[str, Any]] = []

    def capture(operation: str, params: dict[str, Any]) -> None:
        if operation == "TransactWriteItems":
            sent.append(params)

    remove = add_request_hook(capture)
    yield sent
    remove()


@pytest.fixture
def errors_seen() -> Iterator[list[str]]:
    """The error code of every failed response while the test runs."""
    seen: list[str] = []

    def capture(operation: str, parsed: dict[str, Any]) -> None:
        code = parsed.get("Error", {}).get("Code")
        if code:
            seen.append(code)

    remove = add_response_hook(capture)
    yield seen
    remove()


async def _add(store: DynamoStore, order: Order) -> None:
    async with store.unit_of_work() as uow:
        await uow.orders.add(order)
        await uow.commit()


def _client() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


# -- the table design -------------------------------------------------------------------


def test_create_tables_is_idempotent_and_safe_concurrently(dynamodb_env: str) -> None:
    url = f"dynamodb://m{uuid.uuid4().hex[:12]}"
    failures: list[BaseException] = []

    def run() -> None:
        try:
            create_tables(url, REGION)
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    name = create_tables(url, REGION)  # and once more, after
    client = _client()
    try:
        table = client.describe_table(TableName=name)["Table"]
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        meta = client.get_item(TableName=name, Key=t.Table(name).meta_key())["Item"]
    finally:
        client.close()
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == set(t.INDEXES)
    assert all(i["Projection"]["ProjectionType"] == "ALL" for i in table["GlobalSecondaryIndexes"])
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert meta["first_month"]["S"] == t.month_key(epoch_ms(datetime.now(UTC)))


def test_table_names_come_from_the_url() -> None:
    assert t.table_name("dynamodb://prod") == "prod-orderhub"
    assert t.table_name("dynamodb://") == "orderhub"
    with pytest.raises(StoreError):
        t.table_name("dynamodb://bad name")


async def test_a_missing_table_is_a_store_error_without_aws_details(dynamodb_env: str) -> None:
    store = DynamoStore("dynamodb://never-made", REGION)
    try:
        with pytest.raises(StoreError) as caught:
            await store.ping()
    finally:
        await store.close()
    assert "ResourceNotFound" not in str(caught.value)
    assert "never-made" not in str(caught.value)


# -- no Scan, ever ----------------------------------------------------------------------


async def test_a_busy_scenario_issues_no_scan(dynamo: DynamoStore, scans: list[str]) -> None:
    operations: list[str] = []
    remove = add_request_hook(lambda operation, _params: operations.append(operation))
    try:
        orders = [make_order("alice" if n % 2 else "bob") for n in range(8)]
        for order in orders:
            await _add(dynamo, order)
        async with dynamo.unit_of_work() as uow:
            paid = await uow.orders.get(orders[0].id)
            assert paid is not None
            paid.record_payment_succeeded(NOW, EventSource.WEBHOOK)
            paid.record_refund(
                Refund("re_1", 100, None, RefundStatus.PENDING, NOW), NOW, EventSource.API
            )
            await uow.orders.save(paid)
            await uow.commit()
        async with dynamo.unit_of_work() as uow:
            assert len(await uow.orders.list_page(OrderFilter(), None, 3)) == 3
            assert len(await uow.orders.list_page(OrderFilter(customer_id="alice"), None, 10)) == 4
            both = OrderFilter(status=OrderStatus.PAID, customer_id="bob")
            assert [o.id for o in await uow.orders.list_page(both, None, 10)] == [orders[0].id]
            assert len(await uow.orders.history(orders[0].id)) >= 2
            unsent = await uow.orders.with_unsent_refunds(NOW + timedelta(hours=1), 10)
            assert [o.id for o in unsent] == [orders[0].id]
        due = await dynamo.deliveries.due(NOW + timedelta(days=1), 100)
        assert len(due) == 8 * 3 + 3 * 2  # created x3 integrations, paid x3, refund x?
        lease = NOW + timedelta(days=1, minutes=1)
        for delivery in due:
            assert await dynamo.deliveries.transition(delivery, claimed(delivery, "w", lease, None))
        loaded = await dynamo.deliveries.load(
            [d for d in [await dynamo.deliveries.get(x.id) for x in due] if d]
        )
        assert len(loaded) == len(due)
        for n, item in enumerate(loaded):
            after = delivered(item.delivery, NOW) if n % 2 else failed(item.delivery, "503", None)
            assert await dynamo.deliveries.transition(
                item.delivery, after, attempt_of(after, NOW, 5)
            )
        dead = await dynamo.deliveries.list_page(
            DeliveryFilter(status=DeliveryStatus.DEAD, integration=Integration.EMAIL), None, 100
        )
        assert dead and {d.integration for d in dead} == {Integration.EMAIL}
        await dynamo.monitoring.record_provider_call(
            ProviderCall(new_id(), "stripe", "create_intent", False, 3, NOW)
        )
        await dynamo.monitoring.record_probes([ProbeResult("dynamodb", NOW, True, 3, None)])
        await dynamo.errors.record(ErrorEntry(new_id(), NOW, "error", "api", "boom", None, None))
        assert await dynamo.monitoring.hourly_totals(*EVERYTHING, ("calls:", "orders:"))
        assert (await dynamo.monitoring.gauges())["status:pending"] == 7
        assert await dynamo.monitoring.orders_created(epoch_ms(NOW), epoch_ms(NOW) + 1)
        assert await dynamo.monitoring.calls_between(epoch_ms(NOW), epoch_ms(NOW) + 1)
        assert await dynamo.monitoring.probe_summaries(NOW - timedelta(hours=1))
        assert await dynamo.errors.recent(10, NOW - timedelta(hours=1))
        assert await dynamo.monitoring.compact(NOW) > 0
        await dynamo.monitoring.prune(NOW - timedelta(days=2), NOW - timedelta(days=7))
        assert await dynamo.deliveries.next_due_at() is None
        assert await dynamo.deliveries.oldest_waiting_at() is None
    finally:
        remove()
    assert scans == []
    assert "Scan" not in operations
    assert {"Query", "GetItem", "TransactWriteItems"} <= set(operations)


async def test_the_guard_catches_a_scan(dynamo: DynamoStore, scans: list[str]) -> None:
    with pytest.raises(AssertionError, match="Scan"):
        await dynamo.db.call("scan", TableName=dynamo.db.name)
    scans.clear()  # this one was on purpose


# -- no hot key -------------------------------------------------------------------------


def _keys(action: dict[str, Any]) -> tuple[str, str]:
    body = next(iter(action.values()))
    key = body.get("Key") or body["Item"]
    return (key["pk"]["S"], key["sk"]["S"])


async def test_fifty_concurrent_creates_share_no_item(
    dynamo: DynamoStore, transactions: list[dict[str, Any]], errors_seen: list[str]
) -> None:
    orders = [make_order(f"c{n % 3}") for n in range(50)]
    await asyncio.gather(*(_add(dynamo, order) for order in orders))
    assert len(transactions) == 50
    owners: dict[tuple[str, str], int] = {}
    for n, request in enumerate(transactions):
        keys = [_keys(action) for action in request["TransactItems"]]
        assert len(keys) <= 10
        for key in keys:
            assert owners.setdefault(key, n) == n, f"two transactions write {key}"
    assert "TransactionCanceledException" not in errors_seen
    assert errors_seen == []
    async with dynamo.unit_of_work() as uow:
        listed = await uow.orders.list_page(OrderFilter(), None, 100)
    assert sorted(o.id for o in listed) == sorted(o.id for o in orders)
    gauges = await dynamo.monitoring.gauges()
    assert gauges == {"status:pending": 50, "backlog": 150}


async def test_a_change_beyond_the_transaction_limit_is_refused_clearly(
    dynamo: DynamoStore, transactions: list[dict[str, Any]]
) -> None:
    orders = [make_order() for _ in range(20)]  # 20 x (order, intent, event, 3 deliveries, ...)
    async with dynamo.unit_of_work() as uow:
        for order in orders:
            await uow.orders.add(order)
        with pytest.raises(StoreError, match="at most 100"):
            await uow.commit()
    assert transactions == []  # refused before sending
    async with dynamo.unit_of_work() as uow:
        assert await uow.orders.get(orders[0].id) is None
    few = [make_order() for _ in range(3)]
    async with dynamo.unit_of_work() as uow:
        for order in few:
            await uow.orders.add(order)
        await uow.commit()
    assert len(transactions) == 1 and len(transactions[0]["TransactItems"]) <= 100


# -- reads ------------------------------------------------------------------------------


async def test_pagination_under_concurrent_inserts_repeats_and_skips_nothing(
    dynamo: DynamoStore,
) -> None:
    existing = [make_order("alice" if n % 3 else "bob") for n in range(25)]
    for order in existing:
        await _add(dynamo, order)
    stop = asyncio.Event()

    async def insert() -> None:
        while not stop.is_set():
            await _add(dynamo, make_order("alice"))

    inserter = asyncio.create_task(insert())
    try:
        for order_filter in (OrderFilter(), OrderFilter(customer_id="alice")):
            seen: list[uuid.UUID] = []
            before: uuid.UUID | None = existing[-1].id  # walk from the newest of `existing`
            seen.append(existing[-1].id)
            while True:
                async with dynamo.unit_of_work() as uow:
                    page = await uow.orders.list_page(order_filter, before, 4)
                if not page:
                    break
                seen += [o.id for o in page]
                before = page[-1].id
            expected = [
                o.id
                for o in reversed(existing)
                if order_filter.customer_id in (None, o.customer_id)
            ]
            if existing[-1].customer_id != order_filter.customer_id and order_filter.customer_id:
                expected = [existing[-1].id, *expected]
            assert seen == expected
            assert len(set(seen)) == len(seen)
    finally:
        stop.set()
        await inserter


async def test_pages_span_months_back_to_the_first(dynamo: DynamoStore) -> None:
    """Ids from earlier months sit in earlier month partitions; a page crosses them."""
    first = await dynamo.db.first_month()
    now_ms = epoch_ms(datetime.now(UTC))
    older = uuid.UUID(int=((now_ms - 40 * 24 * HOUR_MS) << 80) | (7 << 76) | 1)  # v7 layout
    order = make_order()
    order.id = older
    order.pending_events = []
    await _add(dynamo, order)
    newer = make_order()
    await _add(dynamo, newer)
    async with dynamo.unit_of_work() as uow:
        listed = await uow.orders.list_page(OrderFilter(), None, 10)
    assert [o.id for o in listed] == [newer.id, older]
    assert await dynamo.db.month_of(older) == first  # older than the store: its first month


async def test_get_by_payment_intent_right_after_commit(dynamo: DynamoStore) -> None:
    order = make_order(intent="pi_fresh")
    await _add(dynamo, order)
    async with dynamo.unit_of_work() as uow:
        found = await uow.orders.get_by_payment_intent("pi_fresh")
        assert found is not None and found.id == order.id
        found.payment_intent_id = "pi_second"
        found.record_payment_failed(NOW, EventSource.WEBHOOK)
        await uow.orders.save(found)
        await uow.commit()
    async with dynamo.unit_of_work() as uow:
        moved = await uow.orders.get_by_payment_intent("pi_second")
        assert moved is not None and moved.id == order.id
        assert await uow.orders.get_by_payment_intent("pi_fresh") is None
        assert await uow.orders.get_by_payment_intent("pi_unknown") is None


async def test_deliveries_lease_renew_release_and_load_the_order_as_of_the_event(
    dynamo: DynamoStore,
) -> None:
    order = make_order()
    await _add(dynamo, order)
    await change_stored(dynamo, order.id, lambda o: o.cancel(NOW, EventSource.API))
    due = await dynamo.deliveries.due(NOW, 10)
    assert len(due) == 6
    lease = NOW + timedelta(minutes=1)
    leased = [claimed(d, "w1", lease, None) for d in due]
    for before, after in zip(due, leased, strict=True):
        assert await dynamo.deliveries.transition(before, after)
        assert not await dynamo.deliveries.transition(before, after)  # lost: it moved on
    assert await dynamo.deliveries.due(NOW, 10) == []
    later = NOW + timedelta(minutes=5)
    kept = await dynamo.deliveries.renew([d.id for d in leased[:2]], "w1", later)
    assert kept == {leased[0].id, leased[1].id}
    assert await dynamo.deliveries.renew([leased[2].id], "other", later) == set()
    # expired leases are due again, renewed ones only later
    again = await dynamo.deliveries.due(lease + timedelta(seconds=1), 10)
    assert {d.id for d in again} == {d.id for d in leased[2:]}
    loaded = await dynamo.deliveries.load(leased)
    statuses = {x.event.type.value: x.order.status for x in loaded}
    assert statuses == {
        "order.created": OrderStatus.PENDING,
        "order.cancelled": OrderStatus.CANCELLED,
    }
    await dynamo.deliveries.release([d.id for d in leased], "w1")
    back = await dynamo.deliveries.due(NOW, 10)
    assert {d.id for d in back} == {d.id for d in due}
    assert {d.status for d in back} == {DeliveryStatus.PENDING}
    assert await dynamo.deliveries.next_due_at() == NOW
    assert await dynamo.deliveries.oldest_waiting_at() == NOW
    assert (await dynamo.monitoring.gauges())["backlog"] == 6


# -- the counter journal and its fold ---------------------------------------------------


async def _busy_counters(store: DynamoStore) -> None:
    rng = random.Random(3)
    for n in range(BUSY):
        at = NOW - timedelta(minutes=rng.randrange(0, 5 * 60))
        order = make_order()
        order.created_at = order.updated_at = at
        order.pending_events = [
            type(e)(e.id, e.order_id, e.type, at, e.status, e.payment_status, e.source)
            for e in order.pending_events
        ]
        await _add(store, order)
        if n % 3 == 0:
            await change_stored(
                store,
                order.id,
                lambda o, at=at: o.record_payment_succeeded(at, EventSource.WEBHOOK),
            )
        await store.monitoring.record_provider_call(
            ProviderCall(new_id(), "stripe", "refund", n % 4 != 0, 2, at)
        )


async def _answers(store: DynamoStore) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    start = hour_of(epoch_ms(NOW)) - 3 * HOUR_MS
    return (
        await store.monitoring.hourly_totals(*EVERYTHING, ("orders:", "revenue:", "calls:")),
        await store.monitoring.hourly_totals(start, start + 2 * HOUR_MS, ("orders:",)),
        await store.monitoring.gauges(),
    )


async def test_compact_folds_the_journal_without_changing_any_total(
    dynamo: DynamoStore,
) -> None:
    await _busy_counters(dynamo)
    before = await _answers(dynamo)
    assert before[0]["orders:successful:usd"] == 4 and before[0]["calls:stripe"] == BUSY
    assert before[2] == {"status:pending": 8, "status:paid": 4, "backlog": 3 * (BUSY + 4)}
    folded = await dynamo.monitoring.compact(NOW)
    assert folded == BUSY + 4 + BUSY  # one journal entry per order write and per call
    assert await _answers(dynamo) == before
    assert await dynamo.monitoring.compact(NOW) == 0  # nothing left
    await _busy_counters(dynamo)  # new entries on top of the totals
    doubled = await _answers(dynamo)
    assert doubled[0]["calls:stripe"] == 2 * BUSY
    await dynamo.monitoring.compact(NOW)
    assert await _answers(dynamo) == doubled


async def test_reads_racing_a_fold_see_the_same_totals(dynamo: DynamoStore) -> None:
    await _busy_counters(dynamo)
    before = await _answers(dynamo)
    folding = asyncio.create_task(dynamo.monitoring.compact(NOW))
    seen = []
    while not folding.done():
        seen += await asyncio.gather(*(_answers(dynamo) for _ in range(3)))
    assert await folding > 0
    assert seen  # reads overlapped the fold
    seen.append(await _answers(dynamo))
    assert all(answer == before for answer in seen)


async def test_one_compactor_at_a_time(dynamo: DynamoStore) -> None:
    await _busy_counters(dynamo)
    assert await dynamo.leases.acquire(
        "counters-compact", "someone", NOW + timedelta(minutes=1), NOW
    )
    assert await dynamo.monitoring.compact(NOW) == 0  # held elsewhere
    await dynamo.leases.release("counters-compact", "someone")
    assert await dynamo.monitoring.compact(NOW) > 0


# -- monitoring records and wiring ------------------------------------------------------


async def test_probes_and_errors_by_time_and_prune(dynamo: DynamoStore) -> None:
    old, recent = NOW - timedelta(days=3), NOW - timedelta(minutes=1)
    await dynamo.monitoring.record_probes(
        [
            ProbeResult("dynamodb", old, False, None, "down"),
            ProbeResult("dynamodb", recent, True, 4, None),
            ProbeResult("stripe", recent, False, None, "timeout"),
        ]
    )
    entries = [
        ErrorEntry(new_id(), at, "error", "api", f"e{n}", None, None)
        for n, at in enumerate([old, recent - timedelta(seconds=1), recent])
    ]
    for entry in entries:
        await dynamo.errors.record(entry)
    summaries = {
        s.name: s for s in await dynamo.monitoring.probe_summaries(NOW - timedelta(days=4))
    }
    assert (summaries["dynamodb"].checks, summaries["dynamodb"].successes) == (2, 1)
    assert summaries["dynamodb"].last_ok and summaries["dynamodb"].last_at == recent
    assert not summaries["stripe"].last_ok
    assert [e.message for e in await dynamo.errors.recent(2, NOW - timedelta(days=4))] == [
        "e2",
        "e1",
    ]
    await dynamo.monitoring.prune(NOW - timedelta(days=2), NOW - timedelta(days=2))
    summaries = {
        s.name: s for s in await dynamo.monitoring.probe_summaries(NOW - timedelta(days=4))
    }
    assert summaries["dynamodb"].checks == 1
    assert [e.message for e in await dynamo.errors.recent(10, NOW - timedelta(days=4))] == [
        "e2",
        "e1",
    ]
    assert await dynamo.idempotency.purge_expired(NOW) == 0  # TTL's job


async def test_settings_open_and_migrate_a_dynamodb_store(dynamodb_env: str, tmp_path: Any) -> None:
    from orderhub.bootstrap import migrate, open_store
    from tests.fixtures.app import make_settings

    settings = make_settings(tmp_path, database_url=f"dynamodb://s{uuid.uuid4().hex[:12]}")
    assert settings.aws_region == REGION
    migrate(settings)
    migrate(settings)  # idempotent
    store = open_store(settings)
    try:
        assert isinstance(store, DynamoStore)
        await store.ping()
        assert len(await store.server_secret("pagination")) == 32
    finally:
        await store.close()


# -- daily totals ------------------------------------------------------------------------


def _totals(name: str, prefix: str) -> list[dict[str, Any]]:
    client = _client()
    try:
        pages = client.get_paginator("query").paginate(
            TableName=name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={":pk": {"S": t.TOTALS_PK}, ":p": {"S": prefix}},
            ConsistentRead=True,
        )
        return [item for page in pages for item in page.get("Items", [])]
    finally:
        client.close()


def _forget_daily_totals(name: str) -> None:
    """The table as a version without daily totals left it: hourly totals with no
    `in_day`, no day totals, no flag in the meta item."""
    client = _client()
    try:
        for item in _totals(name, "D#"):
            client.delete_item(TableName=name, Key={"pk": item["pk"], "sk": item["sk"]})
        for item in _totals(name, "H#"):
            client.update_item(
                TableName=name,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="REMOVE in_day",
            )
        client.update_item(
            TableName=name,
            Key=t.Table(name).meta_key(),
            UpdateExpression=f"REMOVE {t.DAILY_TOTALS}",
        )
    finally:
        client.close()


async def test_migrate_counts_totals_folded_before_daily_totals_existed(
    dynamodb_url: str,
) -> None:
    """Hourly totals folded by a version without daily totals are added to their days by
    `orderhub migrate`; until then whole days are read hour by hour. Figures are the same
    throughout, and a second migrate adds nothing."""
    store = DynamoStore(dynamodb_url, REGION, delivery_targets(list(Integration)))
    rng = random.Random(4)
    orders = []
    try:
        for n in range(20):
            order = make_order(at=NOW - timedelta(minutes=rng.randrange(0, 5 * 24 * 60)))
            if n % 3 == 0:
                order.record_payment_succeeded(order.created_at, EventSource.WEBHOOK)
            await _add(store, order)
            orders.append(order)
        assert await store.monitoring.compact(NOW) == 20
    finally:
        await store.close()
    name = t.table_name(dynamodb_url)
    assert _totals(name, "D#")  # the fold added each hour to its day
    assert all(i.get("in_day") == i["value"] for i in _totals(name, "H#"))
    span = (NOW - timedelta(days=90), NOW + timedelta(minutes=1))
    expected = buckets_from(contributions(orders))

    async def figures_now() -> OrderBuckets:
        fresh = DynamoStore(dynamodb_url, REGION, delivery_targets(list(Integration)))
        try:
            return await figures.order_buckets(fresh, *span)
        finally:
            await fresh.close()

    await asyncio.to_thread(_forget_daily_totals, name)
    assert await figures_now() == expected  # read hour by hour: no flag yet

    await asyncio.to_thread(create_tables, dynamodb_url, REGION)
    hours = _totals(name, "H#")
    assert hours and all(i.get("in_day") == i["value"] for i in hours)
    days = _totals(name, "D#")
    assert sum(int(i["value"]["N"]) for i in days if i["metric"]["S"].startswith("orders:")) == 20
    assert await figures_now() == expected
    client = _client()
    try:
        assert _backfill_daily_totals(client, name) == 0
    finally:
        client.close()
