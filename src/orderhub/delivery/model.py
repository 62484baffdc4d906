"""Deliveries: one per (event, integration), their states, routing and retry timing. Pure."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from orderhub.kit.ids import new_id
from orderhub.orders.domain import INTERNAL_EVENTS, EventType, Order, OrderEvent


class Integration(StrEnum):
    """The systems order events reach: the deliveries' integration, the health role, the
    metrics key; the error log spells it as a service (SPEC §11)."""

    EMAIL = "email"
    SHEETS = "sheets"
    NOTIFICATIONS = "notifications"

    @property
    def error_service(self) -> str:
        """The error log's name for it: emailService, sheetsService, notificationService."""
        return "notificationService" if self is Integration.NOTIFICATIONS else f"{self}Service"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DEAD = "dead"


# Which events reach which integration. The sheet follows every saved change (the
# internal `order.changed` included); email also gets the internal
# `order.tracking_updated` (its `order.updated` already moves the sheet row);
# notifications see the public events only.
EMAIL_EVENTS = frozenset(
    {
        EventType.CREATED,
        EventType.PAID,
        EventType.PAYMENT_FAILED,
        EventType.SHIPPED,
        EventType.TRACKING_UPDATED,
        EventType.CANCELLED,
        EventType.PARTIALLY_REFUNDED,
        EventType.REFUNDED,
    }
)
ROUTES: dict[Integration, frozenset[EventType]] = {
    Integration.EMAIL: EMAIL_EVENTS,
    Integration.SHEETS: frozenset(EventType) - {EventType.TRACKING_UPDATED},
    Integration.NOTIFICATIONS: frozenset(EventType) - INTERNAL_EVENTS,
}

DeliveryTargets = Callable[[EventType], list[Integration]]
WAITING = frozenset({DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT})
LOST_ATTEMPT = "the previous attempt never finished (worker lost)"
MAX_ERROR_CHARS = 2000


def delivery_targets(enabled: Iterable[Integration]) -> DeliveryTargets:
    """The integrations an event goes to, among those configured (backend not `none`)."""
    active = [integration for integration in Integration if integration in set(enabled)]

    def targets(event_type: EventType) -> list[Integration]:
        return [i for i in active if event_type in ROUTES[i]]

    return targets


FIRST_RETRY = timedelta(seconds=2)
MAX_RETRY = timedelta(minutes=15)


def next_attempt(
    attempts: int,
    now: datetime,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> datetime:
    """Exponential backoff with full jitter on the upper half: 2 s, 4 s, 8 s ... capped at
    15 min; a receiver's Retry-After is honoured (within the cap) when it asks for longer."""
    base = min(FIRST_RETRY * (2 ** max(0, attempts - 1)), MAX_RETRY)
    delay = base / 2 + base / 2 * rng()
    if retry_after is not None:
        delay = max(delay, min(timedelta(seconds=retry_after), MAX_RETRY))
    moment: datetime = now + delay
    return moment


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: EventType
    order_id: uuid.UUID
    integration: Integration
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    event_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    @property
    def waiting(self) -> bool:
        """Still to be delivered (counted in the outbox backlog)."""
        return self.status in WAITING


def fan_out(events: list[OrderEvent], targets: DeliveryTargets, now: datetime) -> list[Delivery]:
    """One new delivery per (event, integration) the event goes to, due now."""
    return [
        Delivery(
            id=new_id(),
            event_id=event.id,
            event_type=event.type,
            order_id=event.order_id,
            integration=integration,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
            event_at=event.at,
            created_at=now,
            delivered_at=None,
        )
        for event in events
        for integration in targets(event.type)
    ]


def is_due(delivery: Delivery, now: datetime) -> bool:
    """Pending and due, or in flight with an expired lease (its worker was lost)."""
    if delivery.status == DeliveryStatus.PENDING:
        return delivery.next_attempt_at <= now
    if delivery.status == DeliveryStatus.IN_FLIGHT:
        return delivery.lease_until is not None and delivery.lease_until <= now
    return False


def claimed(
    delivery: Delivery,
    worker_id: str,
    lease_until: datetime,
    give_up_before: datetime | None,
) -> Delivery:
    """The delivery leased to `worker_id`. Taking over an expired lease counts the lost
    attempt; one whose event is older than `give_up_before` goes dead instead, so a
    delivery that keeps killing its worker is not retried forever."""
    if delivery.status != DeliveryStatus.IN_FLIGHT:
        return replace(
            delivery,
            status=DeliveryStatus.IN_FLIGHT,
            lease_owner=worker_id,
            lease_until=lease_until,
        )
    lost = replace(delivery, attempts=delivery.attempts + 1, last_error=LOST_ATTEMPT)
    if give_up_before is not None and delivery.event_at < give_up_before:
        return replace(lost, status=DeliveryStatus.DEAD, lease_owner=None, lease_until=None)
    return replace(lost, lease_owner=worker_id, lease_until=lease_until)


def delivered(delivery: Delivery, now: datetime) -> Delivery:
    return replace(
        delivery,
        status=DeliveryStatus.DELIVERED,
        attempts=delivery.attempts + 1,
        delivered_at=now,
        last_error=None,
        lease_owner=None,
        lease_until=None,
    )


def failed(delivery: Delivery, error: str, retry_at: datetime | None) -> Delivery:
    """Back to pending until `retry_at`, or dead when there is none."""
    return replace(
        delivery,
        status=DeliveryStatus.PENDING if retry_at else DeliveryStatus.DEAD,
        attempts=delivery.attempts + 1,
        next_attempt_at=retry_at or delivery.next_attempt_at,
        last_error=error[:MAX_ERROR_CHARS],
        lease_owner=None,
        lease_until=None,
    )


def released(delivery: Delivery) -> Delivery:
    """Given back untouched (a graceful stop)."""
    return replace(delivery, status=DeliveryStatus.PENDING, lease_owner=None, lease_until=None)


def postponed(delivery: Delivery, until: datetime) -> Delivery:
    """Given back untouched, due again at `until` (its turn could not come now, e.g. the
    sheets lease is held by another worker); no attempt is counted."""
    return replace(
        delivery,
        status=DeliveryStatus.PENDING,
        next_attempt_at=until,
        lease_owner=None,
        lease_until=None,
    )


def retried(delivery: Delivery, now: datetime) -> Delivery:
    """A dead delivery back to pending, due now: a fresh start, so the age limit and the
    backoff count from the retry."""
    return replace(
        delivery,
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        event_at=now,
        attempts=0,
    )


def backlog_change(before: Delivery | None, after: Delivery) -> int:
    """How a transition moves the outbox backlog (pending + in flight)."""
    return int(after.waiting) - int(before.waiting if before else False)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One try at sending a delivery, kept for monitoring."""

    id: uuid.UUID
    delivery_id: uuid.UUID
    integration: Integration
    outcome: str  # delivered, failed, dead
    duration_ms: int
    error: str | None
    at: datetime


def attempt_of(after: Delivery, now: datetime, duration_ms: int) -> DeliveryAttempt:
    outcome = {DeliveryStatus.DELIVERED: "delivered", DeliveryStatus.DEAD: "dead"}.get(
        after.status, "failed"
    )
    return DeliveryAttempt(
        id=new_id(),
        delivery_id=after.id,
        integration=after.integration,
        outcome=outcome,
        duration_ms=duration_ms,
        error=None if outcome == "delivered" else after.last_error,
        at=now,
    )


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what it delivers: its event and the order as of the event."""

    delivery: Delivery
    event: OrderEvent
    order: Order


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    order_id: uuid.UUID | None = None
    integration: Integration | None = None
    created_since: datetime | None = None  # created at or after this moment
