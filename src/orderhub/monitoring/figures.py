"""Figures read from the store's counters: metrics over a range or step by step, orders
by status, the outbox backlog. Whole hours come from the hourly counters, the partial
hours at the ends of a range or of a point from the raw rows (a bounded number), so no
figure costs more with more orders; a series reads its whole range at once (one read of
the counters, one raw read per partial hour), never once per point."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from orderhub.kit.clock import epoch_ms
from orderhub.monitoring.rollups import (
    BACKLOG,
    HOUR_MS,
    CallCounts,
    OrderBuckets,
    Span,
    add_up,
    buckets_from,
    call_counts_from,
    call_totals,
    contributions,
    hour_of,
    split_hours,
    status_counts,
)
from orderhub.store.protocol import MonitoringRepository, Store

ORDER_METRICS = ("orders:", "revenue:")
CALL_METRICS = ("calls:", "errors:")
PARTIAL_HOUR_READS = 8  # raw reads of partial hours made at the same time

Gauges = Mapping[str, int]  # what `MonitoringRepository.gauges()` returns
Row = TypeVar("Row")


def place(
    rows: Sequence[Row], at_ms: Callable[[Row], int], spans: Sequence[Span]
) -> list[list[Row]]:
    """`rows` sorted into `spans` (sorted, not overlapping) by their time; a row in no
    span is dropped."""
    starts = [lo for lo, _hi in spans]
    placed: list[list[Row]] = [[] for _ in spans]
    for row in rows:
        at = at_ms(row)
        index = bisect.bisect_right(starts, at) - 1
        if index >= 0 and at < spans[index][1]:
            placed[index].append(row)
    return placed


async def _partial_totals(
    monitoring: MonitoringRepository, pieces: Sequence[Span], prefixes: tuple[str, ...]
) -> list[dict[str, int]]:
    """Totals of each piece (sorted, each within one hour) from the raw rows: one read per
    hour the pieces touch."""
    by_hour: dict[int, list[int]] = {}
    for index, (lo, _hi) in enumerate(pieces):
        by_hour.setdefault(hour_of(lo), []).append(index)
    totals: list[dict[str, int]] = [{} for _ in pieces]
    gate = asyncio.Semaphore(PARTIAL_HOUR_READS)

    async def read(indexes: list[int]) -> None:
        spans = [pieces[i] for i in indexes]
        lo, hi = spans[0][0], spans[-1][1]
        async with gate:
            if prefixes == ORDER_METRICS:
                orders = await monitoring.orders_created(lo, hi)
                parts = [
                    contributions(part) for part in place(orders, lambda o: o.created_ms, spans)
                ]
            else:
                calls = await monitoring.calls_between(lo, hi)
                parts = [call_totals(part) for part in place(calls, lambda c: c.at_ms, spans)]
        for index, part in zip(indexes, parts, strict=True):
            totals[index] = part

    await asyncio.gather(*(read(indexes) for indexes in by_hour.values()))
    return totals


async def range_totals(
    monitoring: MonitoringRepository,
    points: Sequence[Span],
    prefixes: tuple[str, ...],
    step_ms: int | None = None,
) -> list[dict[str, int]]:
    """The counters of each point (contiguous, oldest first). One point: its whole hours
    summed by the store. Several: `step_ms` (a whole hour or day) is their step, each
    point's whole hours lying within one step of UTC time, read for all points at once."""
    totals: list[dict[str, int]] = [{} for _ in points]
    wholes: list[tuple[int, Span]] = []
    partials: list[tuple[int, Span]] = []
    for index, (lo, hi) in enumerate(points):
        for piece_lo, piece_hi, whole in split_hours(lo, hi):
            (wholes if whole else partials).append((index, (piece_lo, piece_hi)))
    if len(points) == 1 and wholes:
        (index, (lo, hi)) = wholes[0]
        add_up(totals[index], await monitoring.hourly_totals(lo, hi, prefixes))
    elif wholes:
        if step_ms is None or step_ms % HOUR_MS:
            raise ValueError("points with whole hours need a step of whole hours")
        lo, hi = wholes[0][1][0], wholes[-1][1][1]
        by_step = await monitoring.hourly_series(lo, hi, prefixes, step_ms)
        for index, (piece_lo, _piece_hi) in wholes:
            add_up(totals[index], by_step.get(piece_lo - piece_lo % step_ms, {}))
    parts = await _partial_totals(monitoring, [span for _i, span in partials], prefixes)
    for (index, _span), part in zip(partials, parts, strict=True):
        add_up(totals[index], part)
    return totals


async def order_buckets(store: Store, start: datetime, end: datetime) -> OrderBuckets:
    """Orders created in [start, end), each in one bucket, with their revenue."""
    span = [(epoch_ms(start), epoch_ms(end))]
    return buckets_from((await range_totals(store.monitoring, span, ORDER_METRICS))[0])


async def call_counts(store: Store, start: datetime, end: datetime) -> dict[str, CallCounts]:
    """Provider calls (by provider) and delivery attempts (by integration) in [start, end)."""
    span = [(epoch_ms(start), epoch_ms(end))]
    return call_counts_from((await range_totals(store.monitoring, span, CALL_METRICS))[0])


async def series_figures(
    store: Store, points: Sequence[tuple[datetime, datetime]], step_ms: int
) -> list[tuple[OrderBuckets, dict[str, CallCounts]]]:
    """`order_buckets` and `call_counts` of each point of a series (contiguous, oldest
    first, cut at whole steps of `step_ms`), read for the whole range at once."""
    spans = [(epoch_ms(lo), epoch_ms(hi)) for lo, hi in points]
    orders, calls = await asyncio.gather(
        range_totals(store.monitoring, spans, ORDER_METRICS, step_ms),
        range_totals(store.monitoring, spans, CALL_METRICS, step_ms),
    )
    return [(buckets_from(o), call_counts_from(c)) for o, c in zip(orders, calls, strict=True)]


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
