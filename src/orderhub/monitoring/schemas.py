"""Monitoring API on the wire."""

from __future__ import annotations

from pydantic import BaseModel, Field

from orderhub.delivery.model import Delivery, DeliveryStatus, Integration
from orderhub.kit.clock import iso_ms
from orderhub.orders.schemas import PaginationOut


class DeliveryOut(BaseModel):
    id: str
    eventId: str
    eventType: str = Field(examples=["order.created"])
    orderId: str
    integration: Integration
    status: DeliveryStatus
    attempts: int
    nextAttemptAt: str | None
    lastError: str | None
    createdAt: str
    deliveredAt: str | None


class DeliveryListOut(BaseModel):
    success: bool = True
    data: list[DeliveryOut]
    pagination: PaginationOut


def delivery_out(delivery: Delivery) -> DeliveryOut:
    waiting = delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT)
    return DeliveryOut(
        id=str(delivery.id),
        eventId=str(delivery.event_id),
        eventType=delivery.event_type.value,
        orderId=str(delivery.order_id),
        integration=delivery.integration,
        status=delivery.status,
        attempts=delivery.attempts,
        nextAttemptAt=iso_ms(delivery.next_attempt_at) if waiting else None,
        lastError=delivery.last_error,
        createdAt=iso_ms(delivery.created_at),
        deliveredAt=iso_ms(delivery.delivered_at) if delivery.delivered_at else None,
    )
