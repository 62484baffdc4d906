"""Figures read from the store's counters: metrics over a range, orders by status, the
outbox backlog. Whole hours come from the hourly counters, the partial hours at a range's
ends from the raw rows (a bounded number), so no figure costs more with more orders."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from orderhub.kit.clock import epoch_ms
from orderhub.monitoring.rollups import (
    BACKLOG,
    CallCounts,
    OrderBuckets,
    add_up,
    buckets_from,
    call_counts_from,
    call_totals,
    contributions,
    split_hours,
    status_counts,
)
from orderhub.store.protocol import MonitoringRepository, Store

ORDER_METRICS = ("orders:", "revenue:")
CALL_METRICS = ("calls:", "errors:")

Gauges = Mapping[str, int]  # what `MonitoringRepository.gauges()` returns


async def _range_totals(
    monitoring: MonitoringRepository, start: datetime, end: datetime, prefixes: tuple[str, ...]
) -> dict[str, int]:
    totals: dict[str, int] = {}
    for lo, hi, whole in split_hours(epoch_ms(start), epoch_ms(end)):
        if whole:
            add_up(totals, await monitoring.hourly_totals(lo, hi, prefixes))
        elif prefixes == ORDER_METRICS:
            add_up(totals, contributions(await monitoring.orders_created(lo, hi)))
        else:
            add_up(totals, call_totals(await monitoring.calls_between(lo, hi)))
    return totals


async def order_buckets(store: Store, start: datetime, end: datetime) -> OrderBuckets:
    """Orders created in [start, end), each in one bucket, with their revenue."""
    return buckets_from(await _range_totals(store.monitoring, start, end, ORDER_METRICS))


async def call_counts(store: Store, start: datetime, end: datetime) -> dict[str, CallCounts]:
    """Provider calls (by provider) and delivery attempts (by integration) in [start, end)."""
    return call_counts_from(await _range_totals(store.monitoring, start, end, CALL_METRICS))


async def orders_by_status(store: Store, gauges: Gauges | None = None) -> dict[str, int]:
    """Orders by status; from `gauges` when the caller already read them (one read of the
    store's gauges serves every figure of a scrape)."""
    return status_counts(gauges if gauges is not None else await store.monitoring.gauges())


async def outbox_backlog(
    store: Store, now: datetime, gauges: Gauges | None = None
) -> tuple[int, float]:
    """Deliveries waiting (pending or in flight) and the age in seconds of the oldest;
    the count from `gauges` when the caller already read them."""
    if gauges is None:
        gauges = await store.monitoring.gauges()
    waiting = gauges.get(BACKLOG, 0)
    oldest = await store.deliveries.oldest_waiting_at()
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return waiting, max(0.0, age)
