"""`GET /api/monitoring/metrics/series`: the figures of `/metrics` step by step, from the
same counters; the points cover the range once and add up to `/metrics` for it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orderhub.kit.clock import FrozenClock, iso_ms
from tests.fixtures.app import AUTH, Harness, HarnessFactory
from tests.fixtures.orders import order_body

# 10:20 UTC: not on a whole hour, so the first and last points of every range are partial
NOW = datetime(2026, 3, 9, 10, 20, 30, tzinfo=UTC)


async def _get(h: Harness, path: str) -> dict[str, Any]:
    response = await h.client.get(path, headers=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _seeded(make_harness: HarnessFactory) -> tuple[Harness, FrozenClock]:
    """Orders at known ages: paid 5 h ago, pending 3 h 10 min ago, declined 40 min ago,
    paid and partly refunded 7 min ago."""
    clock = FrozenClock(NOW - timedelta(hours=5))
    h: Harness = await make_harness(clock=clock)

    async def create() -> dict[str, Any]:
        response = await h.create_order(order_body())
        assert response.status_code == 201, response.text
        order: dict[str, Any] = response.json()["data"]["order"]
        return order

    assert (await h.confirm(await create())).status_code == 200
    clock.at = NOW - timedelta(hours=3, minutes=10)
    await create()
    clock.at = NOW - timedelta(minutes=40)
    assert (await h.confirm(await create(), "pm_card_chargeDeclined")).status_code == 402
    clock.at = NOW - timedelta(minutes=7)
    refunded = await create()
    assert (await h.confirm(refunded)).status_code == 200
    refund = await h.client.post(
        "/api/payments/refund", json={"orderId": refunded["id"], "amount": 9.97}, headers=AUTH
    )
    assert refund.status_code == 200, refund.text
    clock.at = NOW
    return h, clock


def _sum(points: list[dict[str, Any]]) -> dict[str, Any]:
    orders = {k: sum(p["orders"][k] for p in points) for k in points[0]["orders"]}
    revenue = round(sum(p["revenue"]["total"] for p in points), 2)
    integrations = {
        name: {k: sum(p["integrations"][name][k] for p in points) for k in ("calls", "errors")}
        for name in points[0]["integrations"]
    }
    return {"orders": orders, "revenue": revenue, "integrations": integrations}


@pytest.mark.parametrize(("time_range", "step"), [("6h", "5m"), ("6h", "1h"), ("2d", "1d")])
async def test_points_add_up_to_the_metrics_of_the_range(
    make_harness: HarnessFactory, time_range: str, step: str
) -> None:
    h, _clock = await _seeded(make_harness)
    series = await _get(h, f"/api/monitoring/metrics/series?timeRange={time_range}&step={step}")
    metrics = await _get(h, f"/api/monitoring/metrics?timeRange={time_range}")
    assert series["timeRange"] == metrics["timeRange"]
    assert series["step"] == step
    points = series["points"]
    # contiguous, from the range's start to its end
    assert points[0]["start"] == metrics["timeRange"]["start"]
    assert points[-1]["end"] == metrics["timeRange"]["end"]
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(points))
    total = _sum(points)
    assert total["orders"] == metrics["orders"]
    assert total["orders"]["total"] == 4
    assert total["revenue"] == metrics["revenue"]["total"] == 209.97
    assert total["integrations"] == metrics["integrations"]
    assert all(set(p["integrations"]) == set(metrics["integrations"]) for p in points)


async def test_each_order_lands_in_the_point_of_its_creation(make_harness: HarnessFactory) -> None:
    h, _clock = await _seeded(make_harness)
    series = await _get(h, "/api/monitoring/metrics/series?timeRange=6h&step=1h")
    points = series["points"]
    # 04:20:30 .. 05:00, then whole hours 05:00 .. 10:00, then 10:00 .. 10:20:30
    assert [p["start"] for p in points] == [
        iso_ms(NOW - timedelta(hours=6)),
        *(iso_ms(datetime(2026, 3, 9, hour, tzinfo=UTC)) for hour in range(5, 11)),
    ]
    by_start = {p["start"]: p for p in points}
    assert by_start["2026-03-09T05:00:00.000Z"]["orders"]["successful"] == 1  # 05:20:30
    assert by_start["2026-03-09T05:00:00.000Z"]["revenue"]["total"] == 109.97
    assert by_start["2026-03-09T07:00:00.000Z"]["orders"]["pending"] == 1  # 07:10:30
    assert by_start["2026-03-09T09:00:00.000Z"]["orders"]["failed"] == 1  # 09:40:30
    last = by_start["2026-03-09T10:00:00.000Z"]  # 10:13:30, paid, 9.97 refunded
    assert last["orders"] == {
        "total": 1,
        "successful": 1,
        "failed": 0,
        "pending": 0,
        "cancelled": 0,
    }
    assert last["revenue"] == {"total": 100.0, "currency": "usd", "byCurrency": {"usd": 100.0}}
    quiet = by_start["2026-03-09T06:00:00.000Z"]
    assert quiet["orders"]["total"] == 0 and quiet["revenue"]["total"] == 0


async def test_five_minute_points(make_harness: HarnessFactory) -> None:
    h, _clock = await _seeded(make_harness)
    series = await _get(h, "/api/monitoring/metrics/series?timeRange=1h&step=5m")
    points = series["points"]
    assert len(points) == 13  # 09:20:30 .. 09:25, eleven whole steps, 10:20 .. 10:20:30
    with_orders = {p["start"]: p["orders"]["total"] for p in points if p["orders"]["total"]}
    assert with_orders == {"2026-03-09T09:40:00.000Z": 1, "2026-03-09T10:10:00.000Z": 1}


@pytest.mark.parametrize(
    ("time_range", "expected"), [("30m", "5m"), ("6h", "5m"), ("24h", "1h"), ("30d", "1d")]
)
async def test_default_step_follows_the_range(
    harness: Harness, time_range: str, expected: str
) -> None:
    series = await _get(harness, f"/api/monitoring/metrics/series?timeRange={time_range}")
    assert series["step"] == expected
    assert 1 <= len(series["points"]) <= 500


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("step=2h", "Validation error: step must be one of 5m, 1h, 1d"),
        (
            "timeRange=7d&step=5m",
            "Validation error: step gives more than 500 points for timeRange 7d",
        ),
        ("timeRange=91d", "Validation error: timeRange must be at most 90 days"),
        ("timeRange=soon", "Validation error: timeRange must look like 30m, 24h or 7d"),
    ],
)
async def test_bad_queries_are_400(harness: Harness, query: str, message: str) -> None:
    response = await harness.client.get(f"/api/monitoring/metrics/series?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


async def test_needs_credentials_and_is_documented(harness: Harness) -> None:
    response = await harness.client.get("/api/monitoring/metrics/series")
    assert response.status_code == 401
    document = (await harness.client.get("/openapi.json")).json()
    operation = document["paths"]["/api/monitoring/metrics/series"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"timeRange", "step"}
    assert {"200", "400", "401"} <= set(operation["responses"])
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("Envelope_SeriesOut_")
    assert "SeriesPointOut" in document["components"]["schemas"]
