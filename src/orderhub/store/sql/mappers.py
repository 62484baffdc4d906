"""Rows <-> domain objects for the SQL tables (the JSON documents come from
`store/documents.py`, shared with every backend)."""

from __future__ import annotations

import uuid
from typing import Any

from orderhub.delivery.model import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Integration,
)
from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.orders.domain import (
    EventSource,
    EventType,
    Order,
    OrderEvent,
    OrderStatus,
    PaymentStatus,
)
from orderhub.store.documents import order_from_document, order_to_document
from orderhub.store.protocol import ApiKeyRecord, ErrorEntry, IdempotencyRecord
from orderhub.store.sql import tables as t


def ms(moment: Any) -> int | None:
    return epoch_ms(moment) if moment is not None else None


def at(value: int | None) -> Any:
    return from_epoch_ms(value) if value is not None else None


def order_row(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "version": order.version,
        "customer_id": order.customer_id,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "payment_intent_id": order.payment_intent_id,
        "currency": order.currency,
        "total_minor": order.total_minor,
        "created_at": epoch_ms(order.created_at),
        "updated_at": epoch_ms(order.updated_at),
        "paid_at": ms(order.paid_at),
        "refunded_minor": order.refunded_minor,
        "unsent_refunds": len(order.unsent_refunds),
        "document": order_to_document(order),
    }


def order_of(row: Any) -> Order:
    return order_from_document(row.document, row.version)


def event_row(event: OrderEvent, order: Order, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "order_id": str(event.order_id),
        "order_version": order.version,
        "type": event.type.value,
        "at": epoch_ms(event.at),
        "status": event.status.value,
        "payment_status": event.payment_status.value,
        "source": event.source.value,
        "order_document": document,
    }


# what `event_of` reads (a history reads no order documents)
EVENT_COLUMNS = tuple(
    t.order_events.c[name]
    for name in ("id", "order_id", "type", "at", "status", "payment_status", "source")
)


def event_of(row: Any, status_column: str = "status") -> OrderEvent:
    return OrderEvent(
        id=uuid.UUID(row.event_id if hasattr(row, "event_id") else row.id),
        order_id=uuid.UUID(row.order_id),
        type=EventType(row.type),
        at=from_epoch_ms(row.at),
        status=OrderStatus(getattr(row, status_column)),
        payment_status=PaymentStatus(row.payment_status),
        source=EventSource(row.source),
    )


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "event_id": str(delivery.event_id),
        "order_id": str(delivery.order_id),
        "integration": delivery.integration.value,
        **delivery_state(delivery),
        "created_at": epoch_ms(delivery.created_at),
    }


def delivery_state(delivery: Delivery) -> dict[str, Any]:
    """The columns a transition may change."""
    return {
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": epoch_ms(delivery.next_attempt_at),
        "lease_owner": delivery.lease_owner,
        "lease_until": ms(delivery.lease_until),
        "last_error": delivery.last_error,
        "event_at": epoch_ms(delivery.event_at),
        "delivered_at": ms(delivery.delivered_at),
    }


def delivery_of(row: Any) -> Delivery:
    return Delivery(
        id=uuid.UUID(row.id),
        event_id=uuid.UUID(row.event_id),
        event_type=EventType(row.type),
        order_id=uuid.UUID(row.order_id),
        integration=Integration(row.integration),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=from_epoch_ms(row.next_attempt_at),
        last_error=row.last_error,
        event_at=from_epoch_ms(row.event_at),
        created_at=from_epoch_ms(row.created_at),
        delivered_at=at(row.delivered_at),
        lease_owner=row.lease_owner,
        lease_until=at(row.lease_until),
    )


def attempt_row(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "id": str(attempt.id),
        "delivery_id": str(attempt.delivery_id),
        "integration": attempt.integration.value,
        "outcome": attempt.outcome,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
        "at": epoch_ms(attempt.at),
    }


def attempt_of(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=uuid.UUID(row.id),
        delivery_id=uuid.UUID(row.delivery_id),
        integration=Integration(row.integration),
        outcome=row.outcome,
        duration_ms=row.duration_ms,
        error=row.error,
        at=from_epoch_ms(row.at),
    )


def api_key_of(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=uuid.UUID(row.id),
        name=row.name,
        prefix=row.prefix,
        key_hash=row.key_hash,
        created_at=from_epoch_ms(row.created_at),
        last_used_at=at(row.last_used_at),
        revoked_at=at(row.revoked_at),
    )


def idempotency_of(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=row.scope,
        key=row.key,
        fingerprint=row.fingerprint,
        resource_id=uuid.UUID(row.resource_id),
        status_code=row.status_code,
        response_body=row.response_body,
        locked_until=at(row.locked_until),
        expires_at=from_epoch_ms(row.expires_at),
    )


def error_entry_of(row: Any) -> ErrorEntry:
    return ErrorEntry(
        id=uuid.UUID(row.id),
        at=from_epoch_ms(row.at),
        level=row.level,
        service=row.service,
        message=row.message,
        error=row.error,
        order_id=uuid.UUID(row.order_id) if row.order_id else None,
    )
