"""Stored records -> domain objects (and a delivery's changing state back), the same
for every backend.

Each function reads one record as plain values by column (attribute) name: a SQL row's
`_mapping`, a DynamoDB item's `values(item)`. Ids are strings, moments epoch
milliseconds; an optional value may be None or missing (DynamoDB leaves out the
attributes whose value is None), a required one must be there.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orderhub.delivery.model import Delivery, DeliveryAttempt, DeliveryStatus, Integration
from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.orders.domain import EventSource, EventType, OrderEvent, OrderStatus, PaymentStatus
from orderhub.store.protocol import ApiKeyRecord, ErrorEntry, IdempotencyRecord

Values = Mapping[Any, Any]  # by column name (a SQLAlchemy RowMapping is keyed by Any)


def ms(moment: datetime | None) -> int | None:
    return epoch_ms(moment) if moment is not None else None


def at(value: int | None) -> datetime | None:
    return from_epoch_ms(value) if value is not None else None


def delivery_state_values(delivery: Delivery) -> dict[str, Any]:
    """The values of a delivery that a transition may change (None: no value)."""
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


def event_from(v: Values) -> OrderEvent:
    return OrderEvent(
        id=uuid.UUID(v["id"]),
        order_id=uuid.UUID(v["order_id"]),
        type=EventType(v["type"]),
        at=from_epoch_ms(v["at"]),
        status=OrderStatus(v["status"]),
        payment_status=PaymentStatus(v["payment_status"]),
        source=EventSource(v["source"]),
    )


def delivery_from(v: Values) -> Delivery:
    """A delivery (its event's `type` included)."""
    return Delivery(
        id=uuid.UUID(v["id"]),
        event_id=uuid.UUID(v["event_id"]),
        event_type=EventType(v["type"]),
        order_id=uuid.UUID(v["order_id"]),
        integration=Integration(v["integration"]),
        status=DeliveryStatus(v["status"]),
        attempts=v["attempts"],
        next_attempt_at=from_epoch_ms(v["next_attempt_at"]),
        last_error=v.get("last_error"),
        event_at=from_epoch_ms(v["event_at"]),
        created_at=from_epoch_ms(v["created_at"]),
        delivered_at=at(v.get("delivered_at")),
        lease_owner=v.get("lease_owner"),
        lease_until=at(v.get("lease_until")),
    )


def attempt_from(v: Values) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=uuid.UUID(v["id"]),
        delivery_id=uuid.UUID(v["delivery_id"]),
        integration=Integration(v["integration"]),
        outcome=v["outcome"],
        duration_ms=v["duration_ms"],
        error=v.get("error"),
        at=from_epoch_ms(v["at"]),
    )


def api_key_from(v: Values) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=uuid.UUID(v["id"]),
        name=v["name"],
        prefix=v["prefix"],
        key_hash=v["key_hash"],
        created_at=from_epoch_ms(v["created_at"]),
        last_used_at=at(v.get("last_used_at")),
        revoked_at=at(v.get("revoked_at")),
    )


def idempotency_from(v: Values) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=v["scope"],
        key=v["key"],
        fingerprint=v["fingerprint"],
        resource_id=uuid.UUID(v["resource_id"]),
        status_code=v.get("status_code"),
        response_body=v.get("response_body"),
        locked_until=at(v.get("locked_until")),
        expires_at=from_epoch_ms(v["expires_at"]),
    )


def error_entry_from(v: Values) -> ErrorEntry:
    return ErrorEntry(
        id=uuid.UUID(v["id"]),
        at=from_epoch_ms(v["at"]),
        level=v["level"],
        service=v["service"],
        message=v["message"],
        error=v.get("error"),
        order_id=uuid.UUID(v["order_id"]) if v.get("order_id") else None,
    )
