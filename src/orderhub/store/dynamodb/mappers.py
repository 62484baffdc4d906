"""Items <-> domain objects. Amounts and counts are integers, moments are epoch
milliseconds, an order is its JSON document from `store/documents.py` (shared with
every backend). An attribute whose value is None is left out of the item. The other
records are read back by `store/mapping.py` from `values(item)` (shared with every
backend)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from orderhub.delivery.model import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
)
from orderhub.kit.clock import epoch_ms
from orderhub.monitoring.rollups import Counters, hour_of
from orderhub.orders.domain import (
    Order,
    OrderEvent,
)
from orderhub.store.documents import order_from_document, order_to_document
from orderhub.store.dynamodb import tables as t
from orderhub.store.mapping import delivery_state_values, ms
from orderhub.store.protocol import ApiKeyRecord, ErrorEntry, IdempotencyRecord

Item = dict[str, Any]  # attribute values in DynamoDB's wire form ({"S": ...}, {"N": ...})


# -- attribute values -------------------------------------------------------------------


def av(value: Any) -> dict[str, Any]:
    """A Python value as an attribute value (str, int, bool, bytes, dict, list)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, dict):
        return {"M": {k: av(v) for k, v in value.items() if v is not None}}
    if isinstance(value, list | tuple):
        return {"L": [av(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"SS": sorted(value)}
    raise TypeError(f"no DynamoDB attribute value for {type(value).__name__}")


def item_of(**attributes: Any) -> Item:
    """An item from Python values, None values left out."""
    return {name: av(value) for name, value in attributes.items() if value is not None}


def plain(value: dict[str, Any]) -> Any:
    """An attribute value back to Python (numbers are integers here)."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        return raw
    if kind == "N":
        return int(raw)
    if kind == "BOOL":
        return bool(raw)
    if kind == "B":
        return bytes(raw)
    if kind == "M":
        return {k: plain(v) for k, v in raw.items()}
    if kind == "L":
        return [plain(v) for v in raw]
    if kind == "SS":
        return set(raw)
    if kind == "NULL":
        return None
    raise TypeError(f"unexpected attribute type {kind}")


def values(item: Item) -> dict[str, Any]:
    return {name: plain(value) for name, value in item.items()}


def item_bytes(item: Item) -> int:
    """An item's size as DynamoDB counts it, near enough (names plus values)."""
    return len(json.dumps(item, default=lambda b: "x" * len(b), separators=(",", ":")))


# -- orders and events ------------------------------------------------------------------


def compact_json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def order_document(order: Order) -> str:
    return compact_json(order_to_document(order))


def order_item(order: Order, month: str, document: str) -> Item:
    """The order with the attributes of every index it belongs to."""
    created = epoch_ms(order.created_at)
    return item_of(
        pk=t.order_pk(order.id),
        sk=t.ORDER_SK,
        id=str(order.id),
        version=order.version,
        doc=document,
        status=order.status.value,
        customer_id=order.customer_id,
        payment_intent_id=order.payment_intent_id,
        created_at=created,
        updated_at=epoch_ms(order.updated_at),
        om_pk=f"ORDERS#{month}",
        os_pk=f"ORDERS#{order.status.value}#{month}",
        oc_pk=f"CUSTOMER#{order.customer_id}",
        ou_pk="UNSENT" if order.unsent_refunds else None,
        oh_pk=hour_of(created),
    )


def order_of(item: Item) -> Order:
    return order_from_document(json.loads(item["doc"]["S"]), int(item["version"]["N"]))


def intent_item(intent_id: str, order_id: uuid.UUID) -> Item:
    return item_of(pk=t.intent_pk(intent_id), sk=t.INTENT_SK, order_id=str(order_id))


def event_item(event: OrderEvent, order: Order, document: str) -> Item:
    """The event, carrying what it keeps of the order as of the event (`event_document`:
    what its deliveries send, without the refunds, which are rebuilt from the order)."""
    return item_of(
        pk=t.order_pk(event.order_id),
        sk=t.event_sk(order.version, event.id),
        id=str(event.id),
        order_id=str(event.order_id),
        order_version=order.version,
        type=event.type.value,
        at=epoch_ms(event.at),
        status=event.status.value,
        payment_status=event.payment_status.value,
        source=event.source.value,
        doc=document,
    )


# what `mapping.event_from` reads (a history reads no order documents)
EVENT_NAMES = {"#type": "type", "#at": "at", "#status": "status", "#source": "source"}
EVENT_PROJECTION = "id, order_id, #type, #at, #status, payment_status, #source"


def event_document_of(item: Item) -> tuple[int, dict[str, Any]]:
    """An event item's order version and what it keeps of the order."""
    return int(item["order_version"]["N"]), json.loads(item["doc"]["S"])


def order_document_of(item: Item) -> tuple[dict[str, Any], int]:
    """An order item's document and version."""
    return json.loads(item["doc"]["S"]), int(item["version"]["N"])


# -- deliveries -------------------------------------------------------------------------


def delivery_index_keys(delivery: Delivery, month: str) -> dict[str, Any]:
    """The index attributes a delivery's state gives it (None: out of that index)."""
    waiting_sort = (
        epoch_ms(delivery.next_attempt_at)
        if delivery.status == DeliveryStatus.PENDING
        else ms(delivery.lease_until)
    )
    waiting = delivery.waiting and waiting_sort is not None
    return {
        "dw_pk": f"WAITING#{delivery.status.value}" if waiting else None,
        "dw_sk": t.waiting_sk(waiting_sort, delivery.id)
        if waiting and waiting_sort is not None
        else None,
        "db_pk": "BACKLOG" if delivery.waiting else None,
        "ds_pk": f"DELIVERIES#{delivery.status.value}#{month}",
    }


def delivery_state(delivery: Delivery, month: str) -> dict[str, Any]:
    """The attributes a transition may change (None: removed), its index keys included."""
    return {**delivery_state_values(delivery), **delivery_index_keys(delivery, month)}


def delivery_item(delivery: Delivery, event_key: str, month: str) -> Item:
    return item_of(
        pk=t.delivery_pk(delivery.id),
        sk=t.DELIVERY_SK,
        id=str(delivery.id),
        event_id=str(delivery.event_id),
        event_sk=event_key,
        type=delivery.event_type.value,
        order_id=str(delivery.order_id),
        integration=delivery.integration.value,
        created_at=epoch_ms(delivery.created_at),
        do_pk=f"ORDER#{delivery.order_id}",
        dm_pk=f"DELIVERIES#{month}",
        **delivery_state(delivery, month),
    )


def update_of(state: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """SET the given attributes, REMOVE those that are None: (expression, names, values)."""
    names: dict[str, str] = {}
    vals: dict[str, Any] = {}
    sets: list[str] = []
    removes: list[str] = []
    for n, (name, value) in enumerate(state.items()):
        names[f"#a{n}"] = name
        if value is None:
            removes.append(f"#a{n}")
        else:
            vals[f":a{n}"] = av(value)
            sets.append(f"#a{n} = :a{n}")
    expression = ""
    if sets:
        expression += "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression.strip(), names, vals


def attempt_item(attempt: DeliveryAttempt) -> Item:
    moment = epoch_ms(attempt.at)
    return item_of(
        pk=t.delivery_pk(attempt.delivery_id),
        sk=t.ATTEMPT_PREFIX + str(attempt.id),
        kind="attempt",
        id=str(attempt.id),
        delivery_id=str(attempt.delivery_id),
        integration=attempt.integration.value,
        outcome=attempt.outcome,
        duration_ms=attempt.duration_ms,
        error=attempt.error,
        at=moment,
        ch_pk=hour_of(moment),
    )


# -- counters ---------------------------------------------------------------------------


def journal_item(counters: Counters, entry_id: uuid.UUID) -> Item:
    """One change's counter deltas, under a key of its own (folded later by `compact`)."""
    return item_of(
        pk=t.journal_pk(counters.shard),
        sk=str(entry_id),
        h={f"{hour}#{metric}": value for (hour, metric), value in counters.hourly.items()},
        g=dict(counters.gauges),
    )


# -- single records ---------------------------------------------------------------------


def api_key_item(record: ApiKeyRecord) -> Item:
    return item_of(
        pk=t.API_KEYS_PK,
        sk=str(record.id),
        id=str(record.id),
        name=record.name,
        prefix=record.prefix,
        key_hash=record.key_hash,
        created_at=epoch_ms(record.created_at),
        last_used_at=ms(record.last_used_at),
        revoked_at=ms(record.revoked_at),
    )


def idempotency_item(record: IdempotencyRecord) -> Item:
    return item_of(
        pk=t.idempotency_pk(record.scope, record.key),
        sk="IDEM",
        scope=record.scope,
        key=record.key,
        fingerprint=record.fingerprint,
        resource_id=str(record.resource_id),
        status_code=record.status_code,
        response_body=record.response_body,
        locked_until=ms(record.locked_until),
        expires_at=epoch_ms(record.expires_at),
        expires=t.ttl_seconds(record.expires_at),
    )


def error_item(entry: ErrorEntry) -> Item:
    moment = epoch_ms(entry.at)
    return item_of(
        pk=t.error_pk(entry.id),
        sk="ERROR",
        id=str(entry.id),
        at=moment,
        level=entry.level,
        service=entry.service,
        message=entry.message,
        error=entry.error,
        order_id=str(entry.order_id) if entry.order_id else None,
        ge_pk=t.ERRORS_PK,
        ge_sk=f"{t.padded(moment)}#{entry.id}",
        expires=t.ttl_seconds(entry.at + t.ERRORS_KEPT),
    )
