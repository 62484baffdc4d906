"""What the console's pages show, worked out from the services' results: the actions an
order allows, the confirm texts, the charts' layers, the filters for templates."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from markupsafe import Markup

from orderhub.console.charts import Layer, stacked_bars
from orderhub.delivery.model import Integration
from orderhub.kit.clock import iso_ms
from orderhub.kit.errors import ValidationFailed
from orderhub.kit.ids import parse_uuid
from orderhub.kit.money import format_major, to_major
from orderhub.monitoring.service import SeriesReport
from orderhub.orders.domain import CANCELLABLE, PATCH_MOVES, Order, OrderStatus

RANGES = ["1h", "6h", "24h", "7d", "30d"]
ACTIONS = ("processing", "shipped", "delivered", "refund", "cancel")
REFUND_REASONS = ["requested_by_customer", "duplicate", "fraudulent"]
# after an action, the page says what happened (fixed texts: nothing is echoed back)
NOTICES = {
    "processing": "The order is now processing.",
    "shipped": "The order is now shipped.",
    "delivered": "The order is now delivered.",
    "refund": "The refund was sent to the payment provider.",
    "cancel": "The order is cancelled.",
    "retried": "The delivery is queued again.",
}

E = TypeVar("E", bound=StrEnum)


def when(moment: datetime | None) -> str:
    """A timestamp as the API writes it, or a dash."""
    return iso_ms(moment) if moment is not None else "—"


def short_when(moment: datetime) -> str:
    return moment.strftime("%d %b %H:%M")


def money(minor: int, currency: str) -> str:
    return f"{format_major(minor, currency)} {currency.upper()}"


def age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


FILTERS: dict[str, Any] = {"when": when, "money": money, "age": age}


def choice(kind: type[E], value: str, field: str) -> E | None:
    """A filter's value: blank for all, else one of the enumeration's values (else 400)."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ValidationFailed.one(field, f"must be one of {', '.join(kind)}") from None


def status_of(value: str) -> OrderStatus | None:
    return choice(OrderStatus, value, "status")


def order_actions(order: Order) -> list[str]:
    """The actions the order allows now, in the console's order."""
    moves = PATCH_MOVES.get(order.status, frozenset())
    allowed = [a for a in ("processing", "shipped", "delivered") if OrderStatus(a) in moves]
    if order.paid_at is not None and order.refundable_minor > 0:
        allowed.append("refund")
    if order.status in CANCELLABLE:
        allowed.append("cancel")
    return allowed


def reason_of(value: str) -> str | None:
    if not value:
        return None
    if value not in REFUND_REASONS:
        raise ValidationFailed.one("reason", f"must be one of {', '.join(REFUND_REASONS)}")
    return value


def refund_id(value: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise ValidationFailed.one("refund", "was not confirmed; start again from the order")
    return parsed


def describe(action: str, order: Order, fields: dict[str, str]) -> str:
    """What the confirm page asks about, in words."""
    total = money(order.total_minor, order.currency)
    if action == "shipped":
        return f"Mark this order shipped with tracking number {fields.get('tracking', '').strip()}."
    if action in ("processing", "delivered"):
        return f"Mark this order {action}."
    if action == "refund":
        amount = fields.get("amount", "").strip()
        what = (
            f"{amount} {order.currency.upper()}"
            if amount
            else f"everything not yet refunded ({money(order.refundable_minor, order.currency)})"
        )
        reason = fields.get("reason") or "no reason given"
        return f"Refund {what} of this order ({total}), {reason.replace('_', ' ')}."
    if order.paid_at is not None:
        return (
            f"Cancel this order ({total}). What is left of its payment "
            f"({money(order.refundable_minor, order.currency)}) is refunded."
        )
    return f"Cancel this order ({total}). Its payment is cancelled."


def describe_retry(integration: Integration | None, order_id: str) -> str:
    scope = f"{integration} " if integration else ""
    order = f" of order {order_id}" if order_id else ""
    return f"Put every dead {scope}delivery{order} back in the queue."


def retried_notice(count: int | None) -> str:
    if count is None:
        return ""
    return f"{count} dead {'delivery is' if count == 1 else 'deliveries are'} queued again."


def charts(series: SeriesReport) -> list[tuple[str, Markup, list[str]]]:
    """The overview's three charts: orders by bucket, revenue, integration errors."""
    points = series.points
    labels = [short_when(p.start) for p in points]
    currency = points[0].currency if points else "usd"
    orders = stacked_bars(
        f"Orders per {series.step}",
        labels,
        [
            Layer(name, [getattr(p.orders, name) for p in points])
            for name in ("successful", "pending", "failed", "cancelled")
        ],
        lambda v: f"{v:g}",
    )
    revenue = stacked_bars(
        f"Revenue ({currency.upper()}) per {series.step}",
        labels,
        [Layer("revenue", [float(to_major(p.revenue_minor, currency)) for p in points])],
        lambda v: f"{v:,.2f}",
    )
    names = sorted({name for p in points for name in p.integrations})
    errors = stacked_bars(
        f"Integration errors per {series.step}",
        labels,
        [
            Layer(
                name, [p.integrations[name].errors if name in p.integrations else 0 for p in points]
            )
            for name in names
        ],
        lambda v: f"{v:g}",
    )
    return [
        ("Orders", orders, ["successful", "pending", "failed", "cancelled"]),
        ("Revenue", revenue, [f"revenue ({currency.upper()})"]),
        ("Integration errors", errors, names),
    ]
