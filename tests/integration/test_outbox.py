"""SPEC §10: events and their deliveries commit with the order; the worker delivers each
exactly once, retries transient failures, kills permanent ones, and operators can retry."""

from __future__ import annotations

import asyncio
import csv
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orderhub.delivery.integrations.base import PermanentDeliveryError, TransientDeliveryError
from orderhub.delivery.leasing import lease_due
from orderhub.delivery.model import (
    EMAIL_EVENTS,
    LOST_ATTEMPT,
    DeliveryFilter,
    DeliveryStatus,
    Integration,
    delivered,
    delivery_targets,
)
from orderhub.delivery.pace import ReceiverPace
from orderhub.delivery.worker import SHEETS_LEASE, DeliveryWorker
from orderhub.kit.clock import FrozenClock, SystemClock
from orderhub.orders.domain import EventSource, EventType, Refund, RefundStatus
from orderhub.payments.outcomes import RefundOutcome
from orderhub.store.protocol import StoreError
from orderhub.store.unit_of_work import update_order
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.integrations import Recorders, recorded_harness

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    """Wait (without a timing assert) until `condition` holds; fail if it never does."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


def _worker(h: Harness, rec: Recorders, clock: FrozenClock, **options: Any) -> DeliveryWorker:
    """Another worker on the harness's store, with the test's recording senders."""
    c = h.container
    defaults: dict[str, Any] = {"lease_seconds": 60, "poll_seconds": 1, "max_age_hours": 24}
    return DeliveryWorker(
        c.store, rec.integrations(), clock, c.error_log, **{**defaults, **options}
    )


async def _drain(worker: DeliveryWorker) -> int:
    total = 0
    while (n := await worker.run_once()) > 0:
        total += n
    return total


async def _version(h: Harness, order_id: str) -> int:
    async with h.container.store.unit_of_work() as uow:
        stored = await uow.orders.get(uuid.UUID(order_id))
    assert stored is not None
    return stored.version


async def _deliveries(h: Harness, **filters: Any) -> list[Any]:
    return await h.container.store.deliveries.list_page(DeliveryFilter(**filters), None, 1000)


def test_routes_of_spec_section_10() -> None:
    everything = delivery_targets(list(Integration))
    for event in EventType:
        expected = [Integration.SHEETS, Integration.NOTIFICATIONS]
        if event is EventType.CHANGED:
            expected = [Integration.SHEETS]  # a saved change without an event of its own
        elif event is EventType.TRACKING_UPDATED:
            expected = [Integration.EMAIL]  # beside its order.updated, which the rest get
        elif event in EMAIL_EVENTS:
            expected = [Integration.EMAIL, *expected]
        assert everything(event) == expected, event
    assert {e.value for e in EMAIL_EVENTS} == {
        "order.created",
        "order.paid",
        "order.payment_failed",
        "order.shipped",
        "order.tracking_updated",
        "order.cancelled",
        "order.partially_refunded",
        "order.refunded",
    }
    assert {e for e in EventType if e.internal} == {EventType.CHANGED, EventType.TRACKING_UPDATED}
    only_sheets = delivery_targets([Integration.SHEETS])
    assert only_sheets(EventType.CREATED) == [Integration.SHEETS]


async def test_every_event_reaches_exactly_its_integrations(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    order = (await h.create_order()).json()["data"]["order"]
    confirm = await h.confirm(order)
    assert confirm.status_code == 200
    for change in (
        {"status": "processing"},
        {"status": "shipped", "trackingNumber": "1Z999"},
        {"metadata": {"gift": "yes"}},
        {"status": "delivered"},
    ):
        response = await h.client.patch(f"/api/orders/{order['id']}", json=change, headers=AUTH)
        assert response.status_code == 200, response.text
    await h.client.post(
        "/api/payments/refund", json={"orderId": order["id"], "amount": 9.97}, headers=AUTH
    )
    await h.client.post("/api/payments/refund", json={"orderId": order["id"]}, headers=AUTH)

    await _drain(h.container.worker)
    events = [
        "order.created",
        "order.paid",
        "order.processing",
        "order.shipped",
        "order.updated",
        "order.delivered",
        "order.partially_refunded",
        "order.refunded",
    ]
    mailed = [e for e in events if EventType(e) in EMAIL_EVENTS]
    assert [m.subject.split()[0] for m in rec.email.sent] == mailed
    assert [m.event_type for m in rec.notifications.published] == events
    assert all(count == 1 for count in rec.notifications.count_by_event().values())
    (row,) = rec.sheets.rows.values()
    assert row.cells[8:10] == ("refunded", "refunded")  # the order's current state
    # the order's current version (refund settlements raise no event, yet move the row)
    assert row.cells[12] == str(row.version) == str(await _version(h, order["id"]))
    statuses = {d.status for d in await _deliveries(h)}
    assert statuses == {DeliveryStatus.DELIVERED}
    # the notification carries the order as of its event
    shipped = next(m for m in rec.notifications.published if m.event_type == "order.shipped")
    assert shipped.order["trackingNumber"] == "1Z999"
    assert shipped.order["status"] == "shipped"


async def test_order_change_and_deliveries_commit_together(
    make_harness: Callable[..., Any],
) -> None:
    h, _rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    order = (await h.create_order()).json()["data"]["order"]
    rows = await _deliveries(h, order_id=uuid.UUID(order["id"]))
    assert sorted(d.integration.value for d in rows) == ["email", "notifications", "sheets"]
    assert {d.status for d in rows} == {DeliveryStatus.PENDING}
    # a change refused by the state machine writes neither an event nor a delivery
    bad = await h.client.patch(
        f"/api/orders/{order['id']}", json={"status": "shipped"}, headers=AUTH
    )
    assert bad.status_code == 409
    assert len(await _deliveries(h, order_id=uuid.UUID(order["id"]))) == 3


async def test_transient_failures_back_off_then_deliver_once(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.failures = [
        TransientDeliveryError("HTTP 503"),
        TransientDeliveryError("HTTP 429", retry_after=30),
    ]
    await h.create_order()
    worker = h.container.worker
    await _drain(worker)
    (delivery,) = await _deliveries(h, integration=Integration.NOTIFICATIONS)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.last_error == "HTTP 503"
    assert 1 <= (delivery.next_attempt_at - T0).total_seconds() <= 2  # 2 s with jitter
    assert await worker.run_once() == 0  # not due yet
    clock.advance(seconds=2)
    await _drain(worker)
    (delivery,) = await _deliveries(h, integration=Integration.NOTIFICATIONS)
    assert delivery.attempts == 2
    assert (delivery.next_attempt_at - clock.now()).total_seconds() >= 30  # Retry-After
    clock.advance(seconds=31)
    await _drain(worker)
    (delivery,) = await _deliveries(h, integration=Integration.NOTIFICATIONS)
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 3
    assert len(rec.notifications.published) == 1
    errors = await h.container.store.errors.recent(10, T0)
    assert {e.service for e in errors} == {"notificationService"}
    assert all(e.order_id == delivery.order_id for e in errors)


async def test_permanent_failure_is_dead_at_once_and_retryable_by_api(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.email.script.failures = [PermanentDeliveryError("HTTP 400: bad address")]
    await h.create_order()
    await _drain(h.container.worker)
    (dead,) = await _deliveries(h, status=DeliveryStatus.DEAD)
    assert dead.integration == Integration.EMAIL and dead.attempts == 1
    listed = await h.client.get("/api/monitoring/deliveries?status=dead", headers=AUTH)
    assert listed.status_code == 200
    (item,) = listed.json()["data"]
    assert item["id"] == str(dead.id)
    assert item["lastError"] == "HTTP 400: bad address"
    assert set(item) == {
        "id",
        "eventId",
        "eventType",
        "orderId",
        "integration",
        "status",
        "attempts",
        "nextAttemptAt",
        "lastError",
        "createdAt",
        "deliveredAt",
    }
    # only dead deliveries can be retried
    delivered = (await _deliveries(h, status=DeliveryStatus.DELIVERED))[0]
    conflict = await h.client.post(f"/api/monitoring/deliveries/{delivered.id}/retry", headers=AUTH)
    assert conflict.status_code == 409
    missing = await h.client.post(f"/api/monitoring/deliveries/{uuid.uuid4()}/retry", headers=AUTH)
    assert missing.status_code == 404
    retried = await h.client.post(f"/api/monitoring/deliveries/{dead.id}/retry", headers=AUTH)
    assert retried.status_code == 200
    assert retried.json()["data"]["status"] == "pending"
    await _drain(h.container.worker)
    assert (await h.container.store.deliveries.get(dead.id)).status == DeliveryStatus.DELIVERED  # type: ignore[union-attr]
    assert len(rec.email.sent) == 1


async def test_still_failing_after_max_age_is_dead(make_harness: Callable[..., Any]) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0), delivery_max_age_hours=1)
    rec.sheets.script.failures = [TransientDeliveryError("down")] * 100
    await h.create_order()
    worker = h.container.worker
    for _ in range(40):
        await _drain(worker)
        clock.advance(minutes=15)
    (delivery,) = await _deliveries(h, integration=Integration.SHEETS)
    assert delivery.status == DeliveryStatus.DEAD
    assert 4 <= delivery.attempts <= 12


async def test_receiver_down_for_a_while_gets_everything_once(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.failures = [TransientDeliveryError("connection refused")] * 25
    for _ in range(5):
        await h.create_order()
    worker = h.container.worker
    for _ in range(12):
        await _drain(worker)
        clock.advance(minutes=5)
    assert len(rec.notifications.published) == 5
    assert all(n == 1 for n in rec.notifications.count_by_event().values())
    assert {d.status for d in await _deliveries(h)} == {DeliveryStatus.DELIVERED}


async def test_two_workers_on_one_store_deliver_each_once(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    gate = asyncio.Event()
    rec.notifications.script.gate = gate
    for _ in range(10):
        await h.create_order()
    c = h.container
    other = _worker(h, rec, clock, batch_size=7)
    first = asyncio.create_task(_drain(c.worker))
    second = asyncio.create_task(_drain(other))
    await asyncio.sleep(0.2)
    gate.set()
    await asyncio.gather(first, second)
    assert sorted(rec.notifications.count_by_event().values()) == [1] * 10
    assert len(rec.email.sent) == 10


async def test_a_dead_workers_lease_expires_and_another_takes_over(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0), worker_lease_seconds=60)
    await h.create_order()
    c = h.container
    # a worker leases everything, then dies without a word
    claimed = await lease_due(
        c.store, clock.now(), "dead-worker", clock.now() + timedelta(seconds=60), 50
    )
    assert len(claimed) == 3
    assert await c.worker.run_once() == 0  # leased: nobody else touches them
    clock.advance(seconds=61)
    assert await c.worker.run_once() == 3
    assert len(rec.notifications.published) == 1 and len(rec.email.sent) == 1
    # the dead worker, waking up, cannot complete what is no longer its own
    late = claimed[0].delivery
    assert not await c.store.deliveries.transition(late, delivered(late, clock.now()))


async def test_the_request_does_not_wait_for_integrations(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    gate = asyncio.Event()  # the receiver hangs until released
    for script in (rec.email.script, rec.notifications.script, rec.sheets.script):
        script.gate = gate
    stop = asyncio.Event()
    worker_task = asyncio.create_task(h.container.worker.run(stop))
    try:
        response = await asyncio.wait_for(h.create_order(), timeout=30)
        assert response.status_code == 201
        # the worker picks the deliveries up (woken by the commit) and is stuck in the
        # receivers, while the request has long been answered
        await _until(lambda: rec.notifications.script.calls == 1)
        assert rec.notifications.published == []
        second = await asyncio.wait_for(h.create_order(), timeout=30)
        assert second.status_code == 201
    finally:
        gate.set()
        stop.set()
        await worker_task
    await _drain(h.container.worker)
    assert len(rec.notifications.published) == 2


async def test_graceful_stop_gives_back_what_it_could_not_finish(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.gate = asyncio.Event()  # never released
    await h.create_order()
    stop = asyncio.Event()
    task = asyncio.create_task(h.container.worker.run(stop, grace_seconds=0.2))
    await _until(lambda: len(rec.email.sent) == 1 and rec.notifications.script.calls == 1)
    stop.set()
    await task
    statuses = {d.integration: d.status for d in await _deliveries(h)}
    assert statuses[Integration.NOTIFICATIONS] == DeliveryStatus.PENDING
    assert statuses[Integration.EMAIL] == DeliveryStatus.DELIVERED


async def test_sheet_rows_never_go_back_to_an_older_version(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    order = (await h.create_order()).json()["data"]["order"]
    for n in ("1", "2"):
        await h.client.patch(
            f"/api/orders/{order['id']}", json={"metadata": {"n": n}}, headers=AUTH
        )
    # one delivery per batch, so the first sheet delivery (version 1) fails, and is retried
    # after the newer ones went through
    one_at_a_time = _worker(h, rec, clock, batch_size=1)
    rec.sheets.script.failures = [TransientDeliveryError("503")]
    await _drain(one_at_a_time)
    assert rec.sheets.rows[order["id"]].version == 3
    clock.advance(minutes=1)
    assert await _drain(one_at_a_time) == 1  # the retried, older delivery
    assert [b[0].version for b in rec.sheets.batches] == [2, 3, 1]
    assert rec.sheets.rows[order["id"]].version == 3  # not rolled back


async def test_deliveries_cli_lists_and_retries(
    make_harness: Callable[..., Any], tmp_path: Any
) -> None:
    # the CLI shares the same service as the API; here through the container
    h, rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.failures = [PermanentDeliveryError("HTTP 410: gone")]
    await h.create_order()
    await _drain(h.container.worker)
    page = await h.container.deliveries.list(limit=10, last_key=None, status=DeliveryStatus.DEAD)
    (dead,) = page.deliveries
    await h.container.deliveries.retry(str(dead.id))
    await _drain(h.container.worker)
    assert len(rec.notifications.published) == 1


async def test_payment_events_from_webhooks_reach_integrations(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    order = (await h.create_order()).json()["data"]["order"]
    from orderhub.payments.outcomes import IntentOutcome, PaymentResult

    await h.container.payment_service.apply(
        IntentOutcome(order["paymentIntentId"], PaymentResult.FAILED, 10997, "usd"),
        EventSource.WEBHOOK,
    )
    await _drain(h.container.worker)
    assert [m.event_type for m in rec.notifications.published] == [
        "order.created",
        "order.payment_failed",
    ]
    assert [m.subject.split()[0] for m in rec.email.sent] == [
        "order.created",
        "order.payment_failed",
    ]


async def test_one_sheets_batch_at_a_time_across_workers(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    running = 0
    most = 0
    real_upsert = rec.sheets.upsert

    async def counting_upsert(rows: list[Any]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        try:
            await real_upsert(rows)
        finally:
            running -= 1

    rec.sheets.upsert = counting_upsert  # type: ignore[method-assign]
    for _ in range(6):
        await h.create_order()
    workers = [_worker(h, rec, clock, batch_size=3) for _ in range(3)]
    for _ in range(20):  # a worker that finds the lease taken gives its batch back for a second
        await asyncio.gather(*(_drain(w) for w in workers))
        if len(rec.sheets.rows) == 6:
            break
        clock.advance(seconds=1)
    assert most == 1
    assert len(rec.sheets.rows) == 6
    assert {d.status for d in await _deliveries(h)} == {DeliveryStatus.DELIVERED}


async def test_a_delivery_queued_behind_slow_ones_renews_its_lease(
    make_harness: Callable[..., Any],
) -> None:
    """Each send may take most of a lease; one queued behind another would start after its
    lease ran out, and another worker would send it too, unless its lease is renewed."""
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    await h.create_order()
    rec.email.script.gate = asyncio.Event()
    rec.notifications.script.gate = asyncio.Event()

    def worker(name: str) -> DeliveryWorker:
        return _worker(h, rec, clock, concurrency=1, worker_id=name)

    a, b = worker("a"), worker("b")
    first = asyncio.create_task(a.run_once())  # one slot: email first, notifications queued
    await _until(lambda: rec.email.script.calls == 1)
    clock.advance(seconds=40)  # the email took 40 s (within its lease)
    rec.email.script.gate.set()
    # notifications got the slot now, renewed its lease, and is sending
    await _until(lambda: rec.notifications.script.calls == 1)
    await a.sheets_settled()  # the sheet row (not gated) is written before the clock jumps
    clock.advance(seconds=21)  # 61 s after the claim: the original lease would be over
    assert await b.run_once() == 0  # nothing to take over: the lease was renewed
    rec.notifications.script.gate.set()
    await first
    assert len(rec.notifications.published) == 1
    assert len(rec.email.sent) == 1
    assert {d.status for d in await _deliveries(h)} == {DeliveryStatus.DELIVERED}


async def test_an_operator_retry_starts_the_backoff_over(make_harness: Callable[..., Any]) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.failures = [
        PermanentDeliveryError("HTTP 400"),
        TransientDeliveryError("503"),
    ]
    await h.create_order()
    await _drain(h.container.worker)
    (dead,) = await _deliveries(h, status=DeliveryStatus.DEAD)
    await h.container.deliveries.retry(str(dead.id))
    await _drain(h.container.worker)
    again = await h.container.store.deliveries.get(dead.id)
    assert again is not None and again.attempts == 1
    assert (again.next_attempt_at - clock.now()).total_seconds() <= 2


async def test_a_held_sheets_lease_delays_only_the_sheet(
    make_harness: Callable[..., Any],
) -> None:
    """A killed worker left the sheets lease behind: email and notifications of new orders
    still go out at once; the sheet row follows when that lease runs out."""
    h = await make_harness(integrations=(rec := Recorders()).integrations())
    store = h.container.store
    now = datetime.now(UTC)
    held_until = now + timedelta(seconds=5)
    assert await store.leases.acquire(SHEETS_LEASE, "killed-worker", held_until, now)
    stop = asyncio.Event()
    worker = asyncio.create_task(h.container.worker.run(stop))
    try:
        first = (await h.create_order()).json()["data"]["order"]
        await _until(lambda: len(rec.email.sent) == 1 and len(rec.notifications.published) == 1, 2)
        # the worker is not stuck waiting for the lease: the next order's messages go out too
        second = (await h.create_order()).json()["data"]["order"]
        await _until(lambda: len(rec.email.sent) == 2 and len(rec.notifications.published) == 2, 2)
        assert rec.sheets.rows == {}
        assert datetime.now(UTC) < held_until
        await _until(lambda: len(rec.sheets.rows) == 2, 15)
        assert datetime.now(UTC) >= held_until
        assert set(rec.sheets.rows) == {first["id"], second["id"]}
    finally:
        stop.set()
        await worker
    deliveries = await _deliveries(h)
    assert {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    # given back while the lease was held, never counted as a failed attempt
    assert {d.attempts for d in deliveries} == {1}


async def test_the_sheets_lease_is_short_renewed_while_writing_and_released_on_stop(
    make_harness: Callable[..., Any],
) -> None:
    rec = Recorders()
    h = await make_harness(integrations=rec.integrations())
    c = h.container
    worker = DeliveryWorker(
        c.store,
        rec.integrations(),
        SystemClock(),
        c.error_log,
        lease_seconds=60,
        poll_seconds=0.05,
        max_age_hours=24,
        sheets_lease_seconds=0.3,
    )
    rec.sheets.script.gate = asyncio.Event()  # the sheet write hangs
    await h.create_order()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, grace_seconds=0.2))

    async def other_gets_lease() -> bool:
        now = datetime.now(UTC)
        got = await c.store.leases.acquire(SHEETS_LEASE, "other", now + timedelta(seconds=1), now)
        if got:
            await c.store.leases.release(SHEETS_LEASE, "other")
        return got

    await _until(lambda: rec.sheets.script.calls == 1)
    await asyncio.sleep(0.8)  # well past the 0.3 s lease: renewed meanwhile
    assert not await other_gets_lease()
    assert len(rec.email.sent) == 1  # not held up by the sheet
    stop.set()
    await task  # the write did not finish within the grace period
    assert await other_gets_lease()  # the stopped worker let go of the lease
    (sheet,) = await _deliveries(h, integration=Integration.SHEETS)
    assert sheet.status == DeliveryStatus.PENDING


def _sheet(h: Harness) -> dict[str, dict[str, str]]:
    """The CSV sheet's rows by order id, as column -> cell."""
    path = h.settings.data_dir / "sheets" / "orders.csv"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {row["Order ID"]: row for row in csv.DictReader(handle)}


async def test_a_retry_after_a_decline_updates_the_sheet_row(
    make_harness: Callable[..., Any],
) -> None:
    h = await make_harness()  # the real CSV sheet, mail and notification files
    order = (await h.create_order()).json()["data"]["order"]
    assert (await h.confirm(order, "pm_card_chargeDeclined")).status_code == 402
    await _drain(h.container.worker)
    assert _sheet(h)[order["id"]]["Payment Status"] == "failed"
    # a new attempt: failed -> pending, without an event of its own
    again = await h.confirm(order, "pm_card_authenticationRequired")
    assert again.json()["data"]["status"] == "requires_action"
    await _drain(h.container.worker)
    row = _sheet(h)[order["id"]]
    assert row["Payment Status"] == "pending"
    assert row["Version"] == str(await _version(h, order["id"]))
    current = (await h.client.get(f"/api/orders/{order['id']}", headers=AUTH)).json()["data"]
    assert row["Updated At"] == current["updatedAt"]
    # the internal event reached the sheet alone: not the history, not the notifications
    assert [e["type"] for e in current["history"]] == ["order.created", "order.payment_failed"]
    notified = (h.settings.data_dir / "notifications.jsonl").read_text().splitlines()
    assert "order.changed" not in "".join(notified)
    assert len(list((h.settings.data_dir / "mail").glob("*.eml"))) == 2
    changed = [d for d in await _deliveries(h) if d.event_type == EventType.CHANGED]
    assert [d.integration for d in changed] == [Integration.SHEETS]


async def test_a_refund_settling_updates_the_sheet_row(make_harness: Callable[..., Any]) -> None:
    h = await make_harness()
    order = (await h.create_order()).json()["data"]["order"]
    assert (await h.confirm(order)).status_code == 200
    refund = Refund("r-1", 500, None, RefundStatus.PENDING, datetime.now(UTC))

    async def reserve(current: Any, _uow: Any, now: datetime) -> None:
        current.record_refund(refund, now, EventSource.API)

    await update_order(h.container.store, h.container.clock, uuid.UUID(order["id"]), reserve)
    await _drain(h.container.worker)
    before = _sheet(h)[order["id"]]
    # the provider reports the refund succeeded: pending -> succeeded moves no amount
    await h.container.payment_service.apply(
        RefundOutcome(
            order["paymentIntentId"],
            "re_1",
            "r-1",
            500,
            "usd",
            RefundStatus.SUCCEEDED,
            None,
            datetime.now(UTC),
        ),
        EventSource.WEBHOOK,
    )
    await _drain(h.container.worker)
    row = _sheet(h)[order["id"]]
    assert int(row["Version"]) == int(before["Version"]) + 1 == await _version(h, order["id"])
    current = (await h.client.get(f"/api/orders/{order['id']}", headers=AUTH)).json()["data"]
    assert current["refunds"][0]["status"] == "succeeded"
    assert row["Updated At"] == current["updatedAt"]


async def test_after_a_burst_every_sheet_row_shows_the_orders_version(
    make_harness: Callable[..., Any],
) -> None:
    h = await make_harness()

    async def one(n: int) -> str:
        order = (await h.create_order()).json()["data"]["order"]
        if n % 2:
            await h.confirm(order, "pm_card_chargeDeclined")
            await h.confirm(order, "pm_card_authenticationRequired")
        else:
            await h.confirm(order)
        return str(order["id"])

    ids = await asyncio.gather(*(one(n) for n in range(12)))
    await _drain(h.container.worker)
    sheet = _sheet(h)
    assert sorted(sheet) == sorted(ids)
    for order_id in ids:
        current = (await h.client.get(f"/api/orders/{order_id}", headers=AUTH)).json()["data"]
        row = sheet[order_id]
        assert row["Version"] == str(await _version(h, order_id)), order_id
        assert (row["Payment Status"], row["Updated At"]) == (
            current["paymentStatus"],
            current["updatedAt"],
        )


async def test_a_delivery_dead_on_takeover_is_told_like_any_other_death(
    make_harness: Callable[..., Any],
) -> None:
    # its workers kept getting lost until the event was past the age limit: the worker
    # that takes it over finds it dead, and tells it (alert, error log) as any death
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0), worker_lease_seconds=60)
    created = await h.create_order()
    order_id = uuid.UUID(created.json()["data"]["order"]["id"])
    c = h.container
    told: list[tuple[uuid.UUID, str]] = []

    async def on_dead(due: Any, error: str) -> None:
        told.append((due.delivery.id, error))

    claimed = await lease_due(
        c.store, clock.now(), "lost-worker", clock.now() + timedelta(seconds=60), 50
    )
    assert len(claimed) == 3
    clock.advance(hours=25)
    worker = _worker(h, rec, clock, max_age_hours=24, on_dead=on_dead)
    assert await _drain(worker) == 3  # taken over, and dead: nothing sent
    assert rec.email.sent == [] and rec.notifications.published == []
    assert sorted(told) == sorted((d.delivery.id, LOST_ATTEMPT) for d in claimed)
    dead = await _deliveries(h, status=DeliveryStatus.DEAD)
    assert len(dead) == 3
    errors = await c.store.errors.recent(10, T0)
    assert sorted(e.service for e in errors) == sorted(
        i.error_service for i in (Integration.EMAIL, Integration.SHEETS, Integration.NOTIFICATIONS)
    )
    assert all(e.order_id == order_id and e.level == "error" for e in errors)


async def test_a_worker_behind_holds_new_orders_until_it_catches_up(
    make_harness: Callable[..., Any],
) -> None:
    """A full lease (more due than one batch) holds order changes; a lease with room to
    spare lets them through. The held create has done nothing yet: no order, no intent."""
    h, rec, clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=60
    )
    c = h.container
    await h.new_order()  # three deliveries due
    worker = _worker(h, rec, clock, batch_size=2, backpressure=c.backpressure)
    assert await worker.run_once() == 2  # a full batch: behind
    assert c.backpressure.held
    create = asyncio.create_task(h.create_order())
    await asyncio.sleep(0.2)
    assert not create.done()
    assert len((await h.client.get("/api/orders", headers=AUTH)).json()["data"]) == 1
    assert await worker.run_once() == 1  # room to spare: caught up
    assert not c.backpressure.held
    response = await asyncio.wait_for(create, 20)
    assert response.status_code == 201, response.text
    assert len((await h.client.get("/api/orders", headers=AUTH)).json()["data"]) == 2


async def test_a_stopped_or_stuck_worker_does_not_stop_the_intake(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=0.2
    )
    c = h.container
    await h.new_order()
    worker = _worker(h, rec, clock, batch_size=2, backpressure=c.backpressure)
    assert await worker.run_once() == 2
    assert c.backpressure.held
    # stuck: the create goes ahead after the longest wait
    response = await asyncio.wait_for(h.create_order(), 20)
    assert response.status_code == 201, response.text
    # stopped: nothing waits for a worker that is not running
    stop = asyncio.Event()
    stop.set()
    await worker.run(stop)
    assert not c.backpressure.held


async def test_sends_timed_on_a_late_loop_do_not_make_a_receiver_slow(
    make_harness: Callable[..., Any],
) -> None:
    """On a loop kept busy (a saturated API) every send takes long; the worker does not
    take that for slow receivers, which would turn the valve off when it is needed most."""
    h, rec, clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=60
    )
    c = h.container
    for script in (rec.email.script, rec.notifications.script):
        script.delay = 0.01  # quick receivers, but each send waits on the loop once
    for _ in range(3):
        await h.new_order()
    pace = ReceiverPace(slow_seconds=0.2)
    worker = _worker(h, rec, clock, backpressure=c.backpressure, pace=pace, poll_seconds=0.05)
    busy = True

    async def busy_api() -> None:
        while busy:
            time.sleep(0.3)  # holds the loop, as a saturated API would
            await asyncio.sleep(0)

    stop = asyncio.Event()
    hog = asyncio.create_task(busy_api())
    running = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            if len(rec.email.sent) >= 3 and len(rec.notifications.published) >= 3:
                break
            await asyncio.sleep(0.05)
        assert len(rec.email.sent) >= 3 and len(rec.notifications.published) >= 3
    finally:
        busy = False
        stop.set()
        await asyncio.wait_for(asyncio.gather(running, hog), 20)
    now = time.perf_counter()
    assert not pace.slow(Integration.EMAIL, now)
    assert not pace.slow(Integration.NOTIFICATIONS, now)


async def test_a_worker_that_cannot_reach_the_store_releases_the_intake(
    make_harness: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind or not, a worker that cannot lease cannot catch up: it lets order changes
    through rather than make each of them wait its full limit."""
    h, rec, clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=60
    )
    c = h.container
    worker = _worker(h, rec, clock, batch_size=2, backpressure=c.backpressure, poll_seconds=0.05)
    c.backpressure.hold()  # as after a full lease

    async def unreachable(*_args: Any) -> Any:
        raise StoreError("store error: PostgreSQL did not answer")

    monkeypatch.setattr(c.store.deliveries, "due", unreachable)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(100):
            if not c.backpressure.held:
                break
            await asyncio.sleep(0.02)
        assert not c.backpressure.held
        assert not running.done()  # still running, and trying again
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
    response = await asyncio.wait_for(h.create_order(), 20)  # 60 s if it were held
    assert response.status_code == 201, response.text


async def test_a_worker_that_fails_releases_the_intake(
    make_harness: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever ends the worker's loop, an unexpected error included, order changes do
    not go on waiting for it."""
    h, rec, clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=60
    )
    c = h.container
    worker = _worker(h, rec, clock, backpressure=c.backpressure, poll_seconds=0.05)
    c.backpressure.hold()  # as after a full lease

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(c.store.deliveries, "due", broken)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(worker.run(asyncio.Event()), 20)
    assert not c.backpressure.held
    response = await asyncio.wait_for(h.create_order(), 20)  # 60 s if it were held
    assert response.status_code == 201, response.text


async def test_deliveries_backing_off_do_not_hold_the_intake(
    make_harness: Callable[..., Any],
) -> None:
    """Only due work counts: an integration that is down leaves its deliveries pending in
    back-off, more of them than a batch, and new orders still go straight through."""
    h, rec, clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=60
    )
    c = h.container
    rec.notifications.script.failures = [TransientDeliveryError("HTTP 503")] * 10
    for _ in range(3):
        await h.new_order()
    worker = _worker(h, rec, clock, batch_size=2, backpressure=c.backpressure)
    await _drain(worker)
    waiting = await _deliveries(h, integration=Integration.NOTIFICATIONS)
    assert [d.status for d in waiting] == [DeliveryStatus.PENDING] * 3  # more than a batch
    assert not c.backpressure.held
    response = await asyncio.wait_for(h.create_order(), 20)  # 60 s if it were held
    assert response.status_code == 201, response.text


async def test_a_full_lease_waiting_on_slow_receivers_does_not_hold_the_intake(
    make_harness: Callable[..., Any],
) -> None:
    """More CPU would not speed up a slow receiver, so a full lease of deliveries to
    receivers whose quickest recent send was slow does not hold order changes; the worker
    measures that from its own sends (here: 0.15 s each, slow from 0.1 s on)."""
    h, rec, clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=60
    )
    c = h.container
    for script in (rec.email.script, rec.notifications.script, rec.sheets.script):
        script.delay = 0.15
    for _ in range(3):
        await h.new_order()  # nine deliveries due
    pace = ReceiverPace(slow_seconds=0.1)
    worker = _worker(h, rec, clock, batch_size=2, backpressure=c.backpressure, pace=pace)
    assert await worker.run_once() == 2  # full, and nothing known of the receivers yet
    assert c.backpressure.held
    waited_for = (Integration.EMAIL, Integration.NOTIFICATIONS)  # sheets: their own task
    while not all(pace.slow(i, time.perf_counter()) for i in waited_for):
        assert await worker.run_once() > 0, "every receiver sent once before the outbox drained"
    assert await worker.run_once() == 2  # full again, all of it to slow receivers
    assert not c.backpressure.held
    response = await asyncio.wait_for(h.create_order(), 20)  # 60 s if it were held
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("method", "body", "field", "after"),
    [
        ("PATCH", {"metadata": {"gift": "yes"}}, "metadata", {"gift": "yes"}),
        ("DELETE", None, "status", "cancelled"),
    ],
)
async def test_updates_and_cancels_wait_while_held_too(
    make_harness: Callable[..., Any],
    method: str,
    body: dict[str, Any] | None,
    field: str,
    after: Any,
) -> None:
    """The same wait guards every order change of the API, not only the create: a held
    PATCH or DELETE changes nothing until the valve is released."""
    h, _rec, _clock = await recorded_harness(
        make_harness, FrozenClock(T0), outbox_backpressure_seconds=60
    )
    c = h.container
    order = await h.new_order()
    assert order[field] != after
    c.backpressure.hold()  # as the worker does after a full lease
    change = asyncio.create_task(
        h.client.request(method, f"/api/orders/{order['id']}", json=body, headers=AUTH)
    )
    await asyncio.sleep(0.2)
    assert not change.done()
    assert (await h.get_order(order["id"]))[field] == order[field]  # nothing changed yet
    c.backpressure.release()
    response = await asyncio.wait_for(change, 20)
    assert response.status_code == 200, response.text
    assert (await h.get_order(order["id"]))[field] == after


def test_the_sheets_writer_pauses_after_a_slow_batch_only() -> None:
    from orderhub.delivery.worker import SHEETS_PAUSE_MAX, sheets_pause

    assert sheets_pause(0.001) == 0.0
    assert sheets_pause(0.05) == pytest.approx(0.15)
    assert sheets_pause(0.1) == pytest.approx(0.3)
    assert sheets_pause(2.0) == SHEETS_PAUSE_MAX <= 0.5  # an idle worker still within 1 s


async def test_rows_queued_while_the_sheets_writer_pauses_go_in_one_batch(
    make_harness: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow batch (a CSV rewritten from an old row on) is followed by a pause; the sheet
    deliveries leased meanwhile wait for it and go out together, instead of one rewrite
    each."""
    from orderhub.delivery import worker as worker_module

    monkeypatch.setattr(worker_module, "sheets_pause", lambda _seconds: 2.0)
    h = await make_harness(integrations=(rec := Recorders()).integrations())
    stop = asyncio.Event()
    worker = asyncio.create_task(h.container.worker.run(stop))
    try:
        await h.create_order()
        await _until(lambda: len(rec.sheets.batches) == 1 and len(rec.email.sent) == 1)
        for n in range(2, 5):  # each leased on its own, while the writer pauses
            await h.create_order()
            await _until(lambda n=n: len(rec.email.sent) == n)  # type: ignore[misc]
        assert len(rec.sheets.batches) == 1
        await _until(lambda: len(rec.sheets.rows) == 4)
    finally:
        stop.set()
        await worker
    assert [len(batch) for batch in rec.sheets.batches] == [1, 3]
    assert {d.status for d in await _deliveries(h)} == {DeliveryStatus.DELIVERED}
