"""Leasing due deliveries: read the due ones, take them with conditional writes of the
state `delivery.model.claimed` gives each (one store round trip for the batch where the
store allows it), and load what the taken ones deliver."""

from __future__ import annotations

from datetime import datetime

from orderhub.delivery.model import DeliveryStatus, DueDelivery, claimed
from orderhub.store.protocol import Store


async def lease_due(
    store: Store,
    now: datetime,
    worker_id: str,
    lease_until: datetime,
    limit: int,
    give_up_before: datetime | None = None,
    dead: list[DueDelivery] | None = None,
) -> list[DueDelivery]:
    """Up to `limit` due deliveries, leased to `worker_id` until `lease_until`. A delivery
    another worker took first is skipped; one that went dead on takeover (its workers kept
    getting lost, `delivery.model.claimed`) is not returned but added to `dead` (when
    given), for the caller to tell like any other death."""
    candidates = await store.deliveries.due(now, limit)
    if not candidates:
        return []
    changes = [
        (candidate, claimed(candidate, worker_id, lease_until, give_up_before), None)
        for candidate in candidates
    ]
    # conditional on what was read: another worker that got there first wins
    written = await store.deliveries.transition_many(changes)
    taken = [after for (_, after, _), ok in zip(changes, written, strict=True) if ok]
    if dead is None:
        taken = [d for d in taken if d.status == DeliveryStatus.IN_FLIGHT]
    loaded = await store.deliveries.load(taken)
    if dead is not None:
        dead.extend(d for d in loaded if d.delivery.status == DeliveryStatus.DEAD)
    return [d for d in loaded if d.delivery.status == DeliveryStatus.IN_FLIGHT]
