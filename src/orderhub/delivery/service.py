"""Operators' use cases on the outbox: list deliveries, retry a dead one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orderhub.delivery.model import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryStatus,
    Integration,
    retried,
)
from orderhub.kit.clock import Clock
from orderhub.kit.cursor import Cursors
from orderhub.kit.errors import Conflict, NotFound
from orderhub.kit.ids import parse_uuid
from orderhub.store.protocol import Store


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: list[Delivery]
    last_key: str | None
    has_more: bool


class DeliveryService:
    def __init__(self, store: Store, clock: Clock, cursors: Cursors) -> None:
        self._store = store
        self._clock = clock
        self._cursors = cursors

    async def list(
        self,
        *,
        limit: int,
        last_key: str | None,
        status: DeliveryStatus | None = None,
        order_id: str | None = None,
        integration: Integration | None = None,
    ) -> DeliveryPage:
        parsed_order = parse_uuid(order_id) if order_id else None
        if order_id and parsed_order is None:
            return DeliveryPage([], None, False)  # no delivery belongs to a non-order id
        scope = f"deliveries|{status or ''}|{order_id or ''}|{integration or ''}"
        cursors = await self._cursors.codec()
        before = cursors.decode(last_key, scope) if last_key else None
        rows = await self._store.deliveries.list_page(
            DeliveryFilter(status=status, order_id=parsed_order, integration=integration),
            before,
            limit + 1,
        )
        has_more = len(rows) > limit
        page = rows[:limit]
        next_key = cursors.encode(page[-1].id, scope) if has_more and page else None
        return DeliveryPage(page, next_key, has_more)

    async def get(self, delivery_id: str) -> Delivery:
        parsed = parse_uuid(delivery_id)
        delivery = await self._store.deliveries.get(parsed) if parsed else None
        if delivery is None:
            raise NotFound("Delivery not found")
        return delivery

    async def attempts(self, delivery: Delivery) -> Sequence[DeliveryAttempt]:
        """The delivery's attempts, oldest first."""
        return await self._store.deliveries.attempts(delivery.id)

    async def retry(self, delivery_id: str) -> Delivery:
        """A dead delivery goes back to pending, due now (409 unless it is dead)."""
        delivery = await self.get(delivery_id)
        if delivery.status != DeliveryStatus.DEAD or not await self._store.deliveries.transition(
            delivery, retried(delivery, self._clock.now())
        ):
            current = await self.get(delivery_id)
            raise Conflict(
                f"Only dead deliveries can be retried; this one is {current.status}",
                code="delivery_not_dead",
            )
        self._store.outbox_signal.set()
        return await self.get(delivery_id)
