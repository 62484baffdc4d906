"""The counter rules of monitoring (pure): buckets, contributions, deltas, hour splits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderhub.kit.clock import epoch_ms
from orderhub.kit.ids import new_id
from orderhub.monitoring.rollups import (
    BACKLOG,
    COUNTER_SHARDS,
    DAY_MS,
    HOUR_MS,
    CallRecord,
    OrderBuckets,
    buckets_from,
    call_counters,
    call_counts_from,
    call_totals,
    contributions,
    order_bucket,
    order_counters,
    split_days,
    split_hours,
    status_counts,
)
from orderhub.orders.domain import EventSource, Refund, RefundStatus
from tests.fixtures.domain import make_order

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HOUR = epoch_ms(NOW) - epoch_ms(NOW) % HOUR_MS


def test_each_order_is_in_exactly_one_bucket() -> None:
    pending = make_order()
    failed = make_order()
    failed.record_payment_failed(NOW, EventSource.WEBHOOK)
    cancelled = make_order()
    cancelled.cancel(NOW)
    paid_then_cancelled = make_order()
    paid_then_cancelled.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    paid_then_cancelled.cancel(NOW)
    assert [order_bucket(o) for o in (pending, failed, cancelled, paid_then_cancelled)] == [
        "pending",
        "failed",
        "cancelled",
        "successful",
    ]


def test_a_new_order_counts_once_in_its_creation_hour_and_its_status() -> None:
    order = make_order(at=NOW)
    counters = order_counters(None, order)
    assert counters.hourly == {(HOUR, "orders:pending:usd"): 1}
    assert counters.gauges == {"status:pending": 1}
    assert 0 <= counters.shard < COUNTER_SHARDS


def test_a_change_moves_the_order_between_buckets_and_counts_revenue_net() -> None:
    before = make_order(at=NOW)
    after = make_order(at=NOW)
    after.id = before.id
    after.record_payment_succeeded(NOW + timedelta(hours=5), EventSource.WEBHOOK)
    after.record_refund(Refund("r", 100, None, RefundStatus.SUCCEEDED, NOW), NOW, EventSource.API)
    counters = order_counters(before, after)
    # counted in the hour the order was created in, whenever it changes
    assert counters.hourly == {
        (HOUR, "orders:pending:usd"): -1,
        (HOUR, "orders:successful:usd"): 1,
        (HOUR, "revenue:usd"): after.total_minor - 100,
    }
    assert counters.gauges == {"status:pending": -1, "status:paid": 1}
    assert counters.shard == order_counters(None, before).shard  # one shard per order


def test_a_change_that_moves_no_counter_moves_nothing() -> None:
    order = make_order(at=NOW)
    counters = order_counters(order, order)
    assert counters.hourly == {} and counters.gauges == {} and not counters


def test_calls_count_in_the_hour_of_the_attempt() -> None:
    key = new_id()
    assert call_counters(key, "email", True, NOW).hourly == {(HOUR, "calls:email"): 1}
    assert call_counters(key, "email", False, NOW).hourly == {
        (HOUR, "calls:email"): 1,
        (HOUR, "errors:email"): 1,
    }


def test_split_hours() -> None:
    start, end = HOUR + 10, HOUR + 3 * HOUR_MS + 20
    assert split_hours(start, end) == [
        (HOUR + 10, HOUR + HOUR_MS, False),
        (HOUR + HOUR_MS, HOUR + 3 * HOUR_MS, True),
        (HOUR + 3 * HOUR_MS, end, False),
    ]
    assert split_hours(HOUR, HOUR + 2 * HOUR_MS) == [(HOUR, HOUR + 2 * HOUR_MS, True)]
    assert split_hours(HOUR + 5, HOUR + 9) == [(HOUR + 5, HOUR + 9, False)]
    assert split_hours(HOUR + 9, HOUR + 9) == []


def test_split_days() -> None:
    day = epoch_ms(NOW) - epoch_ms(NOW) % DAY_MS
    # hours before the first midnight, two whole days, hours after the last midnight
    start, end = day + 5 * HOUR_MS, day + 3 * DAY_MS + 2 * HOUR_MS
    assert split_days(start, end) == (
        (start, day + DAY_MS),
        (day + DAY_MS, day + 3 * DAY_MS),
        (day + 3 * DAY_MS, end),
    )
    # aligned to midnights: days alone
    head, days, tail = split_days(day, day + 2 * DAY_MS)
    assert (head[0] == head[1], days, tail[0] == tail[1]) == (True, (day, day + 2 * DAY_MS), True)
    # no whole day in it: hours alone, and the days span is empty
    head, days, tail = split_days(day + HOUR_MS, day + 23 * HOUR_MS)
    assert head == (day + HOUR_MS, day + 23 * HOUR_MS) and days[0] == days[1]
    assert tail[0] == tail[1]
    # across one midnight but no whole day
    head, days, tail = split_days(day + 20 * HOUR_MS, day + DAY_MS + 3 * HOUR_MS)
    assert days[0] == days[1] and head[1] - head[0] + tail[1] - tail[0] == 7 * HOUR_MS


def test_totals_read_back_as_buckets_calls_and_statuses() -> None:
    paid = make_order()
    paid.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    totals = contributions([paid, make_order(), make_order()])
    assert buckets_from(totals) == OrderBuckets(
        successful=1, pending=2, revenue_minor={"usd": paid.total_minor}
    )
    calls = call_totals([CallRecord("stripe", True, 0), CallRecord("stripe", False, 0)])
    assert {k: (v.calls, v.errors) for k, v in call_counts_from(calls).items()} == {
        "stripe": (2, 1)
    }
    assert status_counts({"status:paid": 2, "status:pending": 0, BACKLOG: 4}) == {"paid": 2}
