"""The table design: one table per `dynamodb://PREFIX`, its keys, its global secondary
indexes and its TTL attribute (`docs/dynamodb.md` describes every item type).

Every item has a partition key `pk` and a sort key `sk` (strings). The indexes are sparse:
an item is in an index only when it carries that index's key attributes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orderhub.store.protocol import StoreError

TTL_ATTRIBUTE = "expires"  # epoch seconds; DynamoDB deletes the item some time after

# How long raw rows are kept (monitoring keeps probes 2 days and errors 7; the raw
# provider calls answer for the partial hours at a range's ends only).
PROBES_KEPT = timedelta(days=2)
ERRORS_KEPT = timedelta(days=7)
CALLS_KEPT = timedelta(days=7)
RECONCILE_RUNS_KEPT = timedelta(days=30)
ALERTS_KEPT = timedelta(days=7)

# DynamoDB's limits for one TransactWriteItems and one item.
MAX_ACTIONS = 100
MAX_TRANSACTION_BYTES = 4_000_000
MAX_ITEM_BYTES = 400_000

# index name -> (partition key attribute, its type, sort key attribute, its type)
INDEXES: dict[str, tuple[str, str, str, str]] = {
    "orders_by_month": ("om_pk", "S", "id", "S"),
    "orders_by_status": ("os_pk", "S", "id", "S"),
    "orders_by_customer": ("oc_pk", "S", "id", "S"),
    "orders_unsent_refunds": ("ou_pk", "S", "updated_at", "N"),
    "orders_by_hour": ("oh_pk", "N", "created_at", "N"),
    "deliveries_waiting": ("dw_pk", "S", "dw_sk", "S"),
    "deliveries_backlog": ("db_pk", "S", "created_at", "N"),
    "deliveries_by_order": ("do_pk", "S", "id", "S"),
    "deliveries_by_status": ("ds_pk", "S", "id", "S"),
    "deliveries_by_month": ("dm_pk", "S", "id", "S"),
    "calls_by_hour": ("ch_pk", "N", "at", "N"),
    "errors_by_time": ("ge_pk", "S", "ge_sk", "S"),
}

_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,200}$")


def table_name(url: str) -> str:
    """`dynamodb://PREFIX` -> `PREFIX-orderhub` (`orderhub` for an empty prefix)."""
    if not url.startswith("dynamodb://"):
        raise StoreError("not a DynamoDB url (dynamodb://PREFIX)")
    prefix = url.removeprefix("dynamodb://").strip("/")
    if not _PREFIX.match(prefix):
        raise StoreError("dynamodb://PREFIX: letters, digits, '_', '-' and '.' only")
    return f"{prefix}-orderhub" if prefix else "orderhub"


def month_key(ms: int) -> str:
    """`2026-12` for a moment in epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def id_ms(value: uuid.UUID) -> int:
    """The creation time a UUIDv7 carries (its first 48 bits, epoch milliseconds)."""
    return value.int >> 80


def previous_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if number == 1 else f"{year:04d}-{number - 1:02d}"


def clamp_month(month: str, first: str, last: str) -> str:
    """Months of ids older than the store go to its first month, of ids from the future
    (a skewed clock, a non-v7 id) to the current one, so every id stays reachable."""
    return max(first, min(month, last))


def padded(ms: int) -> str:
    """Epoch milliseconds as a fixed-width string (sort keys order lexically)."""
    return f"{ms:015d}"


def waiting_sk(ms: int, delivery_id: uuid.UUID | str) -> str:
    """The waiting index's sort key: when the delivery is due, then its id, so that
    deliveries due at the same moment come in id (creation) order, as in SQL."""
    return f"{padded(ms)}#{delivery_id}"


def due_until(ms: int) -> str:
    """The highest waiting sort key due at `ms` (`~` sorts after every id)."""
    return f"{padded(ms)}#~"


def ttl_seconds(moment: datetime) -> int:
    return int(moment.timestamp()) + 1


@dataclass(frozen=True, slots=True)
class Table:
    name: str

    @staticmethod
    def key(pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def meta_key(self) -> dict[str, Any]:
        return self.key("META", "STORE")


# -- keys of every item type ------------------------------------------------------------


def order_pk(order_id: uuid.UUID | str) -> str:
    return f"ORDER#{order_id}"


ORDER_SK = "ORDER"


def intent_pk(intent_id: str) -> str:
    return f"INTENT#{intent_id}"


INTENT_SK = "INTENT"
EVENT_PREFIX = "EVENT#"


def event_sk(version: int, event_id: uuid.UUID) -> str:
    return f"{event_sk_from(version)}{event_id}"


def event_sk_from(version: int) -> str:
    """The lowest sort key of the events of `version`: below every one of them and above
    every event of an earlier version."""
    return f"{EVENT_PREFIX}{version:010d}#"


def delivery_pk(delivery_id: uuid.UUID | str) -> str:
    return f"DELIVERY#{delivery_id}"


DELIVERY_SK = "DELIVERY"
ATTEMPT_PREFIX = "ATTEMPT#"


def call_pk(call_id: uuid.UUID) -> str:
    return f"CALL#{call_id}"


def journal_pk(shard: int) -> str:
    return f"DELTA#{shard}"


TOTALS_PK = "TOTALS"


def hourly_total_sk(hour: int, metric: str) -> str:
    return f"H#{padded(hour)}#{metric}"


def daily_total_sk(day: int, metric: str) -> str:
    return f"D#{padded(day)}#{metric}"


# The meta item's attribute saying every hourly total is counted in its day too (set by
# `orderhub migrate` once it has added the totals folded before daily totals existed).
DAILY_TOTALS = "daily_totals"
DAILY_TOTALS_COMPLETE = "complete"


def daily_totals_complete(meta_item: dict[str, Any]) -> bool:
    return bool(meta_item.get(DAILY_TOTALS, {}).get("S") == DAILY_TOTALS_COMPLETE)


def gauge_total_sk(metric: str) -> str:
    return f"G#{metric}"


def probe_pk(name: str) -> str:
    return f"PROBE#{name}"


PROBE_NAMES_KEY = ("META", "PROBES")
ERRORS_PK = "ERRORS"


def error_pk(entry_id: uuid.UUID) -> str:
    return f"ERROR#{entry_id}"


API_KEYS_PK = "APIKEYS"


def api_key_hash_pk(key_hash: str) -> str:
    return f"APIKEYHASH#{key_hash}"


def idempotency_pk(scope: str, key: str) -> str:
    return f"IDEM#{len(scope)}#{scope}#{key}"


def webhook_pk(event_id: str) -> str:
    return f"WEBHOOK#{event_id}"


RECONCILE_PK = "RECONCILE"
ALERTS_PK = "ALERTS"


def lease_pk(name: str) -> str:
    return f"LEASE#{name}"


def secret_pk(name: str) -> str:
    return f"SECRET#{name}"


def sandbox_pk(intent_id: str) -> str:
    return f"SANDBOX#{intent_id}"


SANDBOX_INTENT_SK = "INTENT"
SANDBOX_REFUND_PREFIX = "REFUND#"


def sandbox_refund_sk(idempotency_key: str) -> str:
    return f"{SANDBOX_REFUND_PREFIX}{idempotency_key}"


def sandbox_key_pk(idempotency_key: str) -> str:
    return f"SANDBOXKEY#{idempotency_key}"


SANDBOX_KEY_SK = "SANDBOXKEY"


def console_session_pk(token_hash: str) -> str:
    return f"SESSION#{token_hash}"


CONSOLE_SESSION_SK = "SESSION"
