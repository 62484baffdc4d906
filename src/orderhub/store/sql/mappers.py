"""Rows <-> domain objects for the SQL tables (the JSON documents come from
`store/documents.py`, shared with every backend). The other records are read back by
`store/mapping.py` from `row._mapping` (shared with every backend)."""

from __future__ import annotations

from typing import Any

from orderhub.delivery.model import (
    Delivery,
    DeliveryAttempt,
)
from orderhub.kit.clock import epoch_ms
from orderhub.orders.domain import (
    Order,
    OrderEvent,
)
from orderhub.store.documents import order_from_document, order_to_document
from orderhub.store.mapping import delivery_state_values, ms
from orderhub.store.sql import tables as t


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


# what `mapping.event_from` reads (a history reads no order documents)
EVENT_COLUMNS = tuple(
    t.order_events.c[name]
    for name in ("id", "order_id", "type", "at", "status", "payment_status", "source")
)


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "event_id": str(delivery.event_id),
        "order_id": str(delivery.order_id),
        "integration": delivery.integration.value,
        **delivery_state_values(delivery),
        "created_at": epoch_ms(delivery.created_at),
    }


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
