"""Deliveries: one per (event, integration), their states, routing and retry timing. Pure."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orderhub.orders.domain import EventType, OrderEvent


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


# SPEC §10: which events reach which integration.
EMAIL_EVENTS = frozenset(
    {
        EventType.CREATED,
        EventType.PAID,
        EventType.PAYMENT_FAILED,
        EventType.SHIPPED,
        EventType.CANCELLED,
        EventType.PARTIALLY_REFUNDED,
        EventType.REFUNDED,
    }
)
ROUTES: dict[Integration, frozenset[EventType]] = {
    Integration.EMAIL: EMAIL_EVENTS,
    Integration.SHEETS: frozenset(EventType),
    Integration.NOTIFICATIONS: frozenset(EventType),
}

DeliveryTargets = Callable[[EventType], list[Integration]]


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


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what it delivers: its event and the order as of the event."""

    delivery: Delivery
    event: OrderEvent
    order_document: dict[str, Any]
    order_version: int


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    order_id: uuid.UUID | None = None
    integration: Integration | None = None
