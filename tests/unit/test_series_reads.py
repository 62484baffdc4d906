"""A series reads the store once for its whole range, not once per point: the counters
in one read, the raw rows once per partial hour. (Hundreds of points each reading the
store made a 90-day daily series or a 6-day hourly one take seconds on DynamoDB.)"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from orderhub.monitoring import figures
from orderhub.monitoring.rollups import HOUR_MS, CallRecord, OrderFacts
from orderhub.monitoring.service import series_bounds
from orderhub.store.protocol import Store

NOW = datetime(2026, 3, 9, 10, 20, 30, tzinfo=UTC)


class CountingMonitoring:
    """The reads `figures` makes, counted; every counter is 1 per hour per metric, every
    raw read finds one call at the start of what it was asked for."""

    def __init__(self) -> None:
        self.reads: Counter[str] = Counter()
        self.raw_spans: list[tuple[int, int]] = []

    async def hourly_totals(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...]
    ) -> dict[str, int]:
        self.reads["hourly_totals"] += 1
        return {"calls:smtp": (end_hour_ms - start_hour_ms) // HOUR_MS}

    async def hourly_series(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...], step_ms: int
    ) -> dict[int, dict[str, int]]:
        self.reads["hourly_series"] += 1
        series: dict[int, dict[str, int]] = {}
        for hour in range(start_hour_ms, end_hour_ms, HOUR_MS):
            step = series.setdefault(hour - hour % step_ms, {"calls:smtp": 0})
            step["calls:smtp"] += 1
        return series

    async def orders_created(self, start_ms: int, end_ms: int) -> list[OrderFacts]:
        self.reads["orders_created"] += 1
        return []

    async def calls_between(self, start_ms: int, end_ms: int) -> list[CallRecord]:
        self.reads["calls_between"] += 1
        self.raw_spans.append((start_ms, end_ms))
        return [CallRecord("smtp", True, start_ms)]


class FakeStore:
    def __init__(self) -> None:
        self.monitoring = CountingMonitoring()


@pytest.mark.parametrize(
    ("span", "step", "points"),
    [
        (timedelta(days=90), timedelta(days=1), 91),
        (timedelta(days=6), timedelta(hours=1), 145),
        (timedelta(hours=6), timedelta(minutes=5), 73),
    ],
)
async def test_a_series_reads_its_range_once(span: timedelta, step: timedelta, points: int) -> None:
    fake = FakeStore()
    bounds = series_bounds(NOW - span, NOW, step)
    assert len(bounds) == points
    series = await figures.series_figures(
        cast(Store, fake), bounds, step // timedelta(milliseconds=1)
    )
    assert len(series) == points
    reads = fake.monitoring.reads
    whole_steps = step >= timedelta(hours=1)
    # counters: one read per kind of figure (orders, calls), whatever the number of points
    assert reads["hourly_series"] == (2 if whole_steps else 0)
    assert reads["hourly_totals"] == 0
    # raw rows: one read per partial hour (the two ends; every hour for 5-minute points)
    partial_hours = 2 if whole_steps else 7
    assert reads["orders_created"] == reads["calls_between"] == partial_hours
    # every hour of the range counted once, in the point it belongs to
    calls: dict[str, Any] = {}
    for _buckets, counts in series:
        for name, count in counts.items():
            calls[name] = calls.get(name, 0) + count.calls
    whole_hours = (span // timedelta(hours=1) - 1) if whole_steps else 0
    assert calls == {"smtp": whole_hours + partial_hours}


async def test_metrics_of_one_range_sum_whole_hours_in_the_store() -> None:
    fake = FakeStore()
    counts = await figures.call_counts(cast(Store, fake), NOW - timedelta(days=90), NOW)
    assert fake.monitoring.reads == Counter(hourly_totals=1, calls_between=2, orders_created=0)
    assert counts["smtp"].calls == 90 * 24 - 1 + 2
