"""The counters monitoring reads, and the rules that fill them. Pure: no I/O.

Every order change, delivery attempt and provider call hands the store a `Counters`
value (computed here) that commits with it. Two kinds of counter:

* hourly rollups, keyed by (hour, metric): `orders:<bucket>:<currency>` and
  `revenue:<currency>` in the hour the order was created, `calls:<name>` and
  `errors:<name>` in the hour of the attempt;
* gauges, keyed by metric alone: `status:<order status>` (orders by status) and
  `backlog` (deliveries pending or in flight).

A counter that every order would touch is a hot key, so each change carries a `shard`
(derived from the order's or the delivery's id); backends keep one row per (key, shard)
or a journal of deltas, and readers add the shards up. The rules for which bucket an
order counts in and how a time range splits into hours live only here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from orderhub.kit.clock import epoch_ms
from orderhub.orders.domain import Order, OrderStatus, PaymentStatus

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
COUNTER_SHARDS = 16
BACKLOG = "backlog"
STATUS_PREFIX = "status:"

Span = tuple[int, int]  # [start, end) in epoch milliseconds


@dataclass(frozen=True, slots=True)
class Counters:
    """Deltas to add, atomically with the write they describe."""

    shard: int
    hourly: dict[tuple[int, str], int] = field(default_factory=dict)  # (hour ms, metric)
    gauges: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.hourly) or bool(self.gauges)


def shard_of(key: uuid.UUID) -> int:
    return key.int % COUNTER_SHARDS


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


def split_hours(start_ms: int, end_ms: int) -> list[tuple[int, int, bool]]:
    """[start, end) as (lo, hi, whole-hours?) pieces: a partial hour at each end, whole
    hours between them."""
    first = -(-start_ms // HOUR_MS) * HOUR_MS  # the first hour boundary at or after start
    last = hour_of(end_ms)
    if first >= last:
        return [(start_ms, end_ms, False)] if start_ms < end_ms else []
    pieces = [(start_ms, first, False), (first, last, True), (last, end_ms, False)]
    return [(lo, hi, whole) for lo, hi, whole in pieces if lo < hi]


def day_of(ms: int) -> int:
    """The first millisecond of the UTC day of `ms`."""
    return ms - ms % DAY_MS


def split_days(start_hour_ms: int, end_hour_ms: int) -> tuple[Span, Span, Span]:
    """Whole hours [start, end) as (hours before the first whole day, the whole days,
    hours after them); each may be empty (lo == hi). Stores keep daily totals beside the
    hourly ones, so a long range reads one row per day and metric, not 24."""
    first = -(-start_hour_ms // DAY_MS) * DAY_MS  # the first day boundary at or after start
    last = day_of(end_hour_ms)
    if first >= last:
        return (start_hour_ms, end_hour_ms), (first, first), (end_hour_ms, end_hour_ms)
    return (start_hour_ms, first), (first, last), (last, end_hour_ms)


class Countable(Protocol):
    """What the counters read of an order: an `Order`, or the `OrderFacts` a store reads
    from its columns without the order's document."""

    @property
    def paid_at(self) -> object | None: ...
    @property
    def status(self) -> OrderStatus: ...
    @property
    def payment_status(self) -> PaymentStatus: ...
    @property
    def currency(self) -> str: ...
    @property
    def total_minor(self) -> int: ...
    @property
    def refunded_minor(self) -> int: ...


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """The counted facts of an order created in a partial hour (`Countable`)."""

    created_ms: int
    paid_at: int | None  # epoch ms, None when never paid
    status: OrderStatus
    payment_status: PaymentStatus
    currency: str
    total_minor: int
    refunded_minor: int


def facts_of(order: Order) -> OrderFacts:
    return OrderFacts(
        created_ms=epoch_ms(order.created_at),
        paid_at=epoch_ms(order.paid_at) if order.paid_at is not None else None,
        status=order.status,
        payment_status=order.payment_status,
        currency=order.currency,
        total_minor=order.total_minor,
        refunded_minor=order.refunded_minor,
    )


def order_bucket(order: Countable) -> str:
    """Each order in exactly one bucket: successful (ever paid), cancelled (never paid,
    cancelled), failed (never paid, last attempt failed), else pending."""
    if order.paid_at is not None:
        return "successful"
    if order.status == OrderStatus.CANCELLED:
        return "cancelled"
    if order.payment_status == PaymentStatus.FAILED:
        return "failed"
    return "pending"


def order_contribution(order: Countable) -> dict[str, int]:
    """What one order adds to the rollup of the hour it was created in."""
    contribution = {f"orders:{order_bucket(order)}:{order.currency}": 1}
    if order.paid_at is not None:
        contribution[f"revenue:{order.currency}"] = order.total_minor - order.refunded_minor
    return contribution


def _subtract(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    deltas = dict(after)
    for metric, value in before.items():
        deltas[metric] = deltas.get(metric, 0) - value
    return {metric: value for metric, value in deltas.items() if value != 0}


def order_counters(before: Order | None, after: Order) -> Counters:
    """The counters an order change moves: `before` is the order as stored (None for a
    new one), `after` as it will be stored."""
    hour = hour_of(epoch_ms(after.created_at))
    rollup = _subtract(order_contribution(after), order_contribution(before) if before else {})
    gauges: dict[str, int] = {}
    if before is None or before.status != after.status:
        gauges[STATUS_PREFIX + after.status.value] = 1
        if before is not None:
            gauges[STATUS_PREFIX + before.status.value] = -1
    return Counters(
        shard_of(after.id),
        {(hour, metric): value for metric, value in rollup.items()},
        gauges,
    )


def call_counters(key: uuid.UUID, name: str, ok: bool, at: datetime) -> Counters:
    """One attempt at an integration or one provider call, counted in its hour."""
    hour = hour_of(epoch_ms(at))
    hourly = {(hour, f"calls:{name}"): 1}
    if not ok:
        hourly[(hour, f"errors:{name}")] = 1
    return Counters(shard_of(key), hourly)


def add_up(totals: dict[str, int], part: Mapping[str, int]) -> None:
    for metric, value in part.items():
        totals[metric] = totals.get(metric, 0) + value


def contributions(orders: Iterable[Countable]) -> dict[str, int]:
    """The rollup of a set of orders, as the hourly rows would hold it."""
    totals: dict[str, int] = {}
    for order in orders:
        add_up(totals, order_contribution(order))
    return totals


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A raw attempt (delivery) or call (provider), for the partial hours of a range."""

    name: str
    ok: bool
    at_ms: int  # when it was made, epoch milliseconds


def call_totals(records: Iterable[CallRecord]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for record in records:
        totals[f"calls:{record.name}"] = totals.get(f"calls:{record.name}", 0) + 1
        if not record.ok:
            totals[f"errors:{record.name}"] = totals.get(f"errors:{record.name}", 0) + 1
    return totals


@dataclass(frozen=True, slots=True)
class OrderBuckets:
    """Orders created in a time range, each in exactly one bucket."""

    successful: int = 0
    failed: int = 0
    pending: int = 0
    cancelled: int = 0
    # paid minus refunded, in minor units, per currency (orders paid among them)
    revenue_minor: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.successful + self.failed + self.pending + self.cancelled


def buckets_from(totals: Mapping[str, int]) -> OrderBuckets:
    counts: dict[str, int] = {}
    revenue: dict[str, int] = {}
    for metric, value in totals.items():
        kind, _, rest = metric.partition(":")
        if kind == "orders":
            bucket = rest.split(":", 1)[0]
            counts[bucket] = counts.get(bucket, 0) + value
        elif kind == "revenue":
            revenue[rest] = revenue.get(rest, 0) + value
    return OrderBuckets(
        successful=counts.get("successful", 0),
        failed=counts.get("failed", 0),
        pending=counts.get("pending", 0),
        cancelled=counts.get("cancelled", 0),
        revenue_minor=revenue,
    )


@dataclass(frozen=True, slots=True)
class CallCounts:
    calls: int
    errors: int


def call_counts_from(totals: Mapping[str, int]) -> dict[str, CallCounts]:
    names = {
        metric.partition(":")[2] for metric in totals if metric.startswith(("calls:", "errors:"))
    }
    return {
        name: CallCounts(totals.get(f"calls:{name}", 0), totals.get(f"errors:{name}", 0))
        for name in names
    }


def status_counts(gauges: Mapping[str, int]) -> dict[str, int]:
    return {
        metric.removeprefix(STATUS_PREFIX): value
        for metric, value in gauges.items()
        if metric.startswith(STATUS_PREFIX) and value
    }
