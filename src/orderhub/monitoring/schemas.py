"""Monitoring API on the wire: the response models of every monitoring route."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from orderhub.delivery.model import Delivery, DeliveryStatus, Integration
from orderhub.kit.clock import iso_ms
from orderhub.kit.wire import JsonAmount, PaginationOut


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


Since = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=40,
        description="a span back from now (30m, 24h, 7d) or an ISO 8601 time",
        examples=["24h"],
    ),
]


class RetryDeliveriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["dead"] = Field(description="only dead deliveries can be retried")
    integration: Integration | None = None
    since: Since | None = Field(default=None, description="deliveries created since then")


class RetriedOut(BaseModel):
    retried: int = Field(description="how many dead deliveries were put back", examples=[3])


class ServiceHealthOut(BaseModel):
    status: str = Field(examples=["up"])
    latency: int | None = Field(default=None, description="milliseconds, where a probe ran")


class HealthOut(BaseModel):
    timestamp: str
    status: str = Field(examples=["healthy"])
    services: dict[str, ServiceHealthOut]


class UnhealthyOut(BaseModel):
    success: bool = False
    data: HealthOut
    error: dict[str, str] = Field(examples=[{"message": "Service unhealthy"}])


class ErrorItemOut(BaseModel):
    timestamp: str
    level: str
    message: str
    service: str
    orderId: str | None
    error: str | None


class ErrorsOut(BaseModel):
    errors: list[ErrorItemOut]
    count: int
    period: str


class OrderCountsOut(BaseModel):
    total: int
    successful: int
    failed: int
    pending: int
    cancelled: int


class RevenueOut(BaseModel):
    total: JsonAmount
    currency: str
    byCurrency: dict[str, JsonAmount]


class CallsOut(BaseModel):
    calls: int
    errors: int


class MetricsOut(BaseModel):
    timeRange: dict[str, str]
    orders: OrderCountsOut
    revenue: RevenueOut
    integrations: dict[str, CallsOut]


class IntegrationOut(BaseModel):
    name: str
    status: str = Field(examples=["operational"])
    lastChecked: str | None
    uptime: str | None = Field(default=None, examples=["99.9%"])
    services: dict[str, str] | None = None


class IntegrationsOut(BaseModel):
    timestamp: str
    integrations: dict[str, IntegrationOut]


class SeriesPointOut(BaseModel):
    start: str
    end: str
    orders: OrderCountsOut
    revenue: RevenueOut
    integrations: dict[str, CallsOut]


class SeriesOut(BaseModel):
    timeRange: dict[str, str]
    step: str = Field(examples=["1h"])
    points: list[SeriesPointOut]
