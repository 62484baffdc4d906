"""What every integration receives, and how it reports failure (SPEC §10).

A sender either returns (delivered), or raises `TransientDeliveryError` (the worker
retries with backoff, honouring `retry_after`) or `PermanentDeliveryError` (the delivery is
dead at once; an operator may retry it). Anything else a sender raises is treated as
transient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DeliveryMessage:
    """One event for one integration.

    `order` is the order exactly as the API presents it (`GET /api/orders/:id` without
    `history`) as of the event; `order_version` the order's version after the event.
    """

    delivery_id: str
    event_id: str
    event_type: str  # e.g. "order.created"
    occurred_at: datetime
    order: Mapping[str, Any]
    order_version: int


class DeliveryError(Exception):
    pass


class TransientDeliveryError(DeliveryError):
    """Worth retrying: timeouts, connection errors, 401/403/408/409/425/429, 5xx, SMTP 4yz."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: other 4xx, SMTP 5yz, a missing address."""


TRANSIENT_HTTP = frozenset({401, 403, 408, 409, 425, 429})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if now is None:
        from datetime import UTC

        now = datetime.now(UTC)
    return max(0.0, (moment - now).total_seconds())


def http_error(
    receiver: str, status: int, detail: str, retry_after: str | None = None
) -> DeliveryError:
    """Classify an HTTP answer that was not a success: `TRANSIENT_HTTP` and 5xx are
    transient, any other status permanent. The message says who answered what, e.g.
    "the webhook answered HTTP 410: gone"."""
    detail = " ".join(detail.split())[:500]
    message = f"{receiver} answered HTTP {status}" + (f": {detail}" if detail else "")
    if status in TRANSIENT_HTTP or status >= 500:
        return TransientDeliveryError(message, retry_after=parse_retry_after(retry_after))
    return PermanentDeliveryError(message)


def smtp_error(code: int, detail: str) -> DeliveryError:
    """SMTP 4yz is transient, 5yz permanent."""
    message = f"SMTP {code}: {detail[:500]}"
    if 400 <= code < 500:
        return TransientDeliveryError(message)
    return PermanentDeliveryError(message)


@dataclass(frozen=True, slots=True)
class EmailMessage:
    delivery_id: str
    event_id: str
    sender: str
    to: str
    subject: str
    text: str
    html: str


class EmailSender(Protocol):
    """`file`, `smtp` or `sendgrid`."""

    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class SheetRow:
    """The order's row: cells in SPEC §10's column order, and the version they show."""

    order_id: str
    version: int
    cells: tuple[str, ...]


SHEET_COLUMNS = (
    "Order ID",
    "Created At",
    "Customer ID",
    "Customer Name",
    "Email",
    "Items",
    "Total",
    "Currency",
    "Status",
    "Payment Status",
    "Tracking Number",
    "Updated At",
    "Version",
)


class SheetWriter(Protocol):
    """`csv` or `google`. Upserts rows by order id; a row is never replaced by an older
    version and never added twice. One call = one batch (one write to the CSV file / one
    batchUpdate)."""

    async def upsert(self, rows: list[SheetRow]) -> None: ...


class Notifier(Protocol):
    """`file`, `sns` or `webhook`: publish `{id, type, createdAt, data: {order}}`."""

    async def publish(self, message: DeliveryMessage) -> None: ...


class Probe(Protocol):
    async def probe(self) -> None:
        """A cheap check that the backend answers (for health); raises when it does not."""


def notification_payload(message: DeliveryMessage) -> dict[str, Any]:
    """The notification body of SPEC §10: `{id, type, createdAt, data: {order}}`."""
    from orderhub.kit.clock import iso_ms

    return {
        "id": message.event_id,
        "type": message.event_type,
        "createdAt": iso_ms(message.occurred_at),
        "data": {"order": dict(message.order)},
    }


def _cell(value: Any) -> str:
    import json

    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sheet_row(message: DeliveryMessage) -> SheetRow:
    """The order's row with its current values, as the API shows them (SPEC §10)."""
    order = message.order
    cells = (
        order["id"],
        order["createdAt"],
        order["customerId"],
        order["customerName"],
        order["customerEmail"],
        _cell(order["items"]),
        _cell(order["totalAmount"]),
        order["currency"],
        order["status"],
        order["paymentStatus"],
        _cell(order.get("trackingNumber")),
        order["updatedAt"],
        str(message.order_version),
    )
    return SheetRow(order_id=str(order["id"]), version=message.order_version, cells=cells)


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(cell: str) -> str:
    """OWASP's rule against formula injection in CSV: prefix a risky first character."""
    return f"'{cell}" if cell.startswith(FORMULA_TRIGGERS) else cell
