"""The shared unit of work (no database): what a commit hands its backend."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from orderhub.delivery.model import Integration, delivery_targets
from orderhub.orders.domain import EventSource, EventType, Order, OrderEvent
from orderhub.store.protocol import ConcurrencyConflict, OrderFilter
from orderhub.store.unit_of_work import OrderRepositoryBase, OrderWrite, UnitOfWorkBase
from tests.fixtures.domain import make_order

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class MemoryOrders(OrderRepositoryBase):
    def __init__(self, stored: dict[uuid.UUID, Order]) -> None:
        super().__init__(delivery_targets(list(Integration)))
        self.stored = stored

    async def _get(self, order_id: uuid.UUID) -> Order | None:
        return self.stored.get(order_id)

    async def _get_by_payment_intent(self, intent_id: str) -> Order | None:
        return None

    async def list_page(
        self, order_filter: OrderFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Order]:
        return []

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        return []

    async def with_unsent_refunds(self, changed_before: datetime, limit: int) -> list[Order]:
        return []


class MemoryUnitOfWork(UnitOfWorkBase):
    def __init__(self, stored: dict[uuid.UUID, Order]) -> None:
        super().__init__(asyncio.Event())
        self.orders = MemoryOrders(stored)
        self.written: list[OrderWrite] = []

    async def _write(self, writes: list[OrderWrite]) -> None:
        self.written.extend(writes)


async def test_a_change_hands_over_events_deliveries_and_counters() -> None:
    order = make_order(at=NOW)
    order.take_events()
    uow = MemoryUnitOfWork({order.id: order})
    async with uow:
        current = await uow.orders.get(order.id)
        assert current is not None
        current.record_payment_succeeded(NOW + timedelta(minutes=1), EventSource.WEBHOOK)
        await uow.orders.save(current)
        await uow.commit()
    (write,) = uow.written
    assert write.expected_version == 1 and write.order.version == 2
    assert [e.type for e in write.events] == [EventType.PAID]
    assert sorted(d.integration.value for d in write.deliveries) == [
        "email",
        "notifications",
        "sheets",
    ]
    assert write.counters.gauges == {"status:pending": -1, "status:paid": 1, "backlog": 3}
    assert write.deliveries


async def test_two_saves_in_one_unit_are_one_write_from_the_version_read() -> None:
    order = make_order(at=NOW)
    order.take_events()
    uow = MemoryUnitOfWork({order.id: order})
    current = await uow.orders.get(order.id)
    assert current is not None
    current.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    await uow.orders.save(current)
    current.cancel(NOW)
    await uow.orders.save(current)
    await uow.commit()
    (write,) = uow.written
    assert (write.expected_version, write.order.version) == (1, 3)
    assert [e.type for e in write.events] == [EventType.PAID, EventType.CANCELLED]
    assert write.counters.gauges["status:cancelled"] == 1
    assert write.counters.gauges["status:pending"] == -1
    assert "status:paid" not in write.counters.gauges


async def test_saving_an_order_read_at_another_version_is_a_conflict() -> None:
    order = make_order(at=NOW)
    uow = MemoryUnitOfWork({order.id: order})
    current = await uow.orders.get(order.id)
    assert current is not None
    current.version = 7
    with pytest.raises(ConcurrencyConflict):
        await uow.orders.save(current)


async def test_nothing_is_handed_over_without_commit() -> None:
    uow = MemoryUnitOfWork({})
    async with uow:
        await uow.orders.add(make_order())
    assert uow.written == []


async def test_a_saved_change_without_an_event_gets_one_sheets_delivery() -> None:
    order = make_order(at=NOW)
    order.take_events()
    order.record_payment_failed(NOW, EventSource.API)
    order.take_events()
    uow = MemoryUnitOfWork({order.id: order})
    async with uow:
        current = await uow.orders.get(order.id)
        assert current is not None
        assert current.record_payment_retrying(NOW + timedelta(seconds=5))
        await uow.orders.save(current)
        await uow.commit()
    (write,) = uow.written
    (event,) = write.events
    assert (event.type, event.payment_status, event.at) == (
        EventType.CHANGED,
        "pending",
        NOW + timedelta(seconds=5),
    )
    assert [(d.integration, d.event_id) for d in write.deliveries] == [
        (Integration.SHEETS, event.id)
    ]
    assert write.counters.gauges["backlog"] == 1
