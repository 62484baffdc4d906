"""Leasing due deliveries: read the due ones, take each with a conditional write of the
state `delivery.model.claimed` gives it, and load what the taken ones deliver."""

from __future__ import annotations

from datetime import datetime

from orderhub.delivery.model import Delivery, DeliveryStatus, DueDelivery, claimed
from orderhub.store.protocol import Store


async def lease_due(
    store: Store,
    now: datetime,
    worker_id: str,
    lease_until: datetime,
    limit: int,
    give_up_before: datetime | None = None,
) -> list[DueDelivery]:
    """Up to `limit` due deliveries, leased to `worker_id` until `lease_until`. A delivery
    another worker took first is skipped; one that went dead on takeover is not returned."""
    leased: list[Delivery] = []
    for candidate in await store.deliveries.due(now, limit):
        after = claimed(candidate, worker_id, lease_until, give_up_before)
        # conditional on what was read: another worker that got there first wins
        if (
            await store.deliveries.transition(candidate, after)
            and after.status == DeliveryStatus.IN_FLIGHT
        ):
            leased.append(after)
    return await store.deliveries.load(leased)
