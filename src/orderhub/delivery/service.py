"""Operators' use cases on the outbox: list deliveries, retry a dead one or all of them."""

from __future__ import annotations

import asyncio
import uuid
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
from orderhub.kit.durations import parse_since
from orderhub.kit.errors import Conflict, NotFound, ValidationFailed
from orderhub.kit.ids import parse_uuid
from orderhub.store.protocol import Store

RETRY_BATCH = 100


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
        after: uuid.UUID | None = None,
    ) -> DeliveryPage:
        """A page, newest first; it starts after `last_key` (the API's cursor) or, for
        the CLI, after the delivery `after` (ids sort by creation)."""
        parsed_order = parse_uuid(order_id) if order_id else None
        if order_id and parsed_order is None:
            return DeliveryPage([], None, False)  # no delivery belongs to a non-order id
        scope = f"deliveries|{status or ''}|{order_id or ''}|{integration or ''}"
        cursors = await self._cursors.codec()
        before = cursors.decode(last_key, scope) if last_key else after
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

    async def retry_matching(
        self,
        *,
        status: DeliveryStatus = DeliveryStatus.DEAD,
        integration: Integration | None = None,
        since: str | None = None,
        order_id: str | None = None,
    ) -> int:
        """Every dead delivery (of `integration`, created since `since`: `7d` or an ISO
        time, of the order `order_id`) back to pending, due now; returns how many were put
        back. Each one is a
        conditional transition, so running it twice, or twice at once, retries each dead
        delivery once (the second run finds none)."""
        if status != DeliveryStatus.DEAD:
            raise ValidationFailed.one("status", "must be dead")
        now = self._clock.now()
        parsed_order = parse_uuid(order_id) if order_id else None
        if order_id and parsed_order is None:
            return 0  # no delivery belongs to a non-order id
        wanted = DeliveryFilter(
            status=DeliveryStatus.DEAD,
            order_id=parsed_order,
            integration=integration,
            created_since=parse_since(since, now) if since is not None else None,
        )
        count = 0
        before = None
        while True:
            page = await self._store.deliveries.list_page(wanted, before, RETRY_BATCH)
            moved = await asyncio.gather(
                *(self._store.deliveries.transition(d, retried(d, now)) for d in page)
            )
            count += sum(moved)
            if len(page) < RETRY_BATCH:
                break
            before = page[-1].id
        if count:
            self._store.outbox_signal.set()
        return count
