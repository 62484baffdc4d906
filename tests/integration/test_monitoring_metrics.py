"""SPEC §11 `GET /api/monitoring/metrics`: order buckets, revenue and integration calls,
computed from stored data for a time range, the same from every instance on one store.

A frozen clock places a scripted mix of orders at known ages; the payment provider's calls
are counted independently by a proxy around the sandbox, and the integrations' calls by the
recording senders, so every expected figure is known exactly for each range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orderhub.delivery.integrations.base import PermanentDeliveryError, TransientDeliveryError
from orderhub.kit.clock import FrozenClock, iso_ms
from orderhub.payments.provider import ProviderError
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.integrations import Recorders
from tests.fixtures.orders import order_body

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Q, the moment the metrics are read, is 8 days after T0: orders are placed at Q - age
Q = T0 + timedelta(days=8)
RANGES = {"30m": timedelta(minutes=30), "1h": timedelta(hours=1), "24h": timedelta(days=1)}
RANGES["7d"] = timedelta(days=7)
PROVIDER_OPERATIONS = frozenset(
    {
        "create_intent",
        "retrieve_intent",
        "confirm_intent",
        "cancel_intent",
        "refund",
        "list_refunds",
    }
)


# -- counting what really happened -----------------------------------------------------------


@dataclass
class Call:
    operation: str
    at: datetime
    ok: bool


class CountingProvider:
    """Stands between orderhub's recording wrapper and the sandbox: notes every provider
    call with the clock's time, and can make the next calls fail as an outage would."""

    def __init__(self, inner: Any, clock: FrozenClock) -> None:
        self._inner = inner
        self._clock = clock
        self.calls: list[Call] = []
        self.outages: list[ProviderError] = []

    @property
    def name(self) -> str:
        return str(self._inner.name)

    def __getattr__(self, attribute: str) -> Any:
        target = getattr(self._inner, attribute)
        if attribute not in PROVIDER_OPERATIONS:
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.outages:
                self.calls.append(Call(attribute, self._clock.now(), ok=False))
                raise self.outages.pop(0)
            self.calls.append(Call(attribute, self._clock.now(), ok=True))
            return await target(*args, **kwargs)

        return call

    def in_range(self, start: datetime, end: datetime) -> dict[str, int]:
        chosen = [c for c in self.calls if start <= c.at < end]
        return {"calls": len(chosen), "errors": sum(not c.ok for c in chosen)}


@dataclass
class Attempts:
    """Delivery attempts per integration (the metrics' names), noted per worker run."""

    log: list[tuple[datetime, str, bool]] = field(default_factory=list)

    def in_range(self, name: str, start: datetime, end: datetime) -> dict[str, int]:
        chosen = [ok for at, n, ok in self.log if n == name and start <= at < end]
        return {"calls": len(chosen), "errors": sum(not ok for ok in chosen)}


@dataclass
class World:
    harness: Harness
    clock: FrozenClock
    recorders: Recorders
    provider: CountingProvider
    attempts: Attempts = field(default_factory=Attempts)

    @property
    def client(self) -> Any:
        return self.harness.client

    def at(self, age: timedelta) -> None:
        """Move the clock forward to Q - age."""
        target = Q - age
        assert target >= self.clock.now()
        self.clock.at = target

    async def create(self, **changes: Any) -> dict[str, Any]:
        response = await self.harness.create_order(order_body(**changes))
        assert response.status_code == 201, response.text
        order: dict[str, Any] = response.json()["data"]["order"]
        return order

    async def confirm(self, order: dict[str, Any], method: str, expected: int) -> None:
        response = await self.harness.confirm(order, method)
        assert response.status_code == expected, response.text

    async def paid(self, **changes: Any) -> dict[str, Any]:
        order = await self.create(**changes)
        await self.confirm(order, "pm_card_visa", 200)
        return order

    async def refund(self, order: dict[str, Any], amount: float | None = None) -> None:
        body: dict[str, Any] = {"orderId": order["id"]}
        if amount is not None:
            body["amount"] = amount
        response = await self.client.post("/api/payments/refund", json=body, headers=AUTH)
        assert response.status_code == 200, response.text

    async def cancel(self, order: dict[str, Any]) -> None:
        response = await self.client.delete(f"/api/orders/{order['id']}", headers=AUTH)
        assert response.status_code == 200, response.text

    async def deliver(self) -> None:
        """Run the worker until idle, noting each attempt the senders saw (sheets get a
        delivery for every saved change; none of the sheet ones fail)."""
        rec = self.recorders
        while True:
            before = {
                "email": (rec.email.script.calls, len(rec.email.script.failures)),
                "notifications": (
                    rec.notifications.script.calls,
                    len(rec.notifications.script.failures),
                ),
            }
            fresh_sheets = await self._pending_first_attempts("sheets")
            if await self.harness.container.worker.run_once() == 0:
                return
            now = self.clock.now()
            for name, script, key in (
                ("emailFile", rec.email.script, "email"),
                ("notificationsFile", rec.notifications.script, "notifications"),
            ):
                calls = script.calls - before[key][0]
                failed = before[key][1] - len(script.failures)
                self.attempts.log += [(now, name, False)] * failed
                self.attempts.log += [(now, name, True)] * (calls - failed)
            # every sheet delivery due now is attempted (and succeeds) in this run
            self.attempts.log += [(now, "csv", True)] * fresh_sheets

    async def _pending_first_attempts(self, integration: str) -> int:
        response = await self.client.get(
            "/api/monitoring/deliveries",
            params={"integration": integration, "status": "pending", "limit": 100},
            headers=AUTH,
        )
        assert response.status_code == 200, response.text
        items = response.json()["data"]
        return sum(
            1
            for d in items
            if d["attempts"] == 0 and d["nextAttemptAt"] <= iso_ms(self.clock.now())
        )


async def make_world(make_harness: Callable[..., Any], **settings: Any) -> World:
    clock = FrozenClock(T0)
    recorders = Recorders()
    harness: Harness = await make_harness(
        clock=clock, integrations=recorders.integrations(), **settings
    )
    recorded: Any = harness.container.recorded_payments
    provider = CountingProvider(recorded.inner, clock)
    recorded.inner = provider
    return World(harness, clock, recorders, provider)


USD_ORDER: dict[str, Any] = {}  # the seed's order: 109.97 usd
EUR_ORDER = {
    "currency": "eur",
    "items": [{"id": "e1", "name": "Euro thing", "quantity": 2, "price": 25.5}],
    "totalAmount": 51.0,
}
JPY_ORDER = {
    "currency": "jpy",
    "items": [{"id": "j1", "name": "Yen thing", "quantity": 1, "price": 5000}],
    "totalAmount": 5000,
}
SMALL_USD = {
    "items": [{"id": "s1", "name": "Small thing", "quantity": 1, "price": 20.0}],
    "totalAmount": 20.0,
}


async def script_orders(w: World) -> None:
    """The mix of orders, each at its age before Q (the comments give its bucket)."""
    w.at(timedelta(days=8))  # outside every range
    await w.paid(**USD_ORDER)  # successful, 109.97 usd
    await w.deliver()

    w.at(timedelta(days=3))
    b = await w.paid(**USD_ORDER)  # successful, 109.97 - 10.00 = 99.97 usd
    await w.refund(b, 10.0)
    await w.paid(**EUR_ORDER)  # successful, 51.00 eur
    await w.deliver()

    w.at(timedelta(hours=20))
    d = await w.paid(**JPY_ORDER)  # successful, 5000 - 1000 = 4000 jpy
    await w.refund(d, 1000)
    e = await w.create(**USD_ORDER)  # failed
    await w.confirm(e, "pm_card_chargeDeclined", 402)
    w.recorders.email.script.failures.append(TransientDeliveryError("HTTP 503"))
    await w.deliver()

    w.at(timedelta(hours=5))
    f = await w.create(**USD_ORDER)  # cancelled (never paid)
    await w.cancel(f)
    g = await w.create(**USD_ORDER)  # successful: declined, then paid, 109.97 usd
    await w.confirm(g, "pm_card_chargeDeclined", 402)
    await w.confirm(g, "pm_card_visa", 200)
    # a provider outage: the create is refused (502), nothing is stored
    w.provider.outages.append(ProviderError("connection refused"))
    refused = await w.harness.create_order(order_body())
    assert refused.status_code == 502, refused.text
    await w.deliver()

    w.at(timedelta(minutes=50))
    h = await w.paid(**USD_ORDER)  # successful: paid, then cancelled (refunded), 0 usd
    await w.cancel(h)
    i = await w.paid(**USD_ORDER)  # successful: paid, then refunded in full, 0 usd
    await w.refund(i)
    await w.deliver()  # also retries the email that failed 19 hours ago

    w.at(timedelta(minutes=20))
    await w.create(**USD_ORDER)  # pending
    await w.paid(**SMALL_USD)  # successful, 20.00 usd
    m = await w.create(**EUR_ORDER)  # failed
    await w.confirm(m, "pm_card_chargeDeclined", 402)
    w.recorders.notifications.script.failures.append(PermanentDeliveryError("HTTP 410: gone"))
    await w.deliver()

    w.at(timedelta(minutes=10))
    n = await w.create(**USD_ORDER)  # cancelled: declined, then cancelled
    await w.confirm(n, "pm_card_chargeDeclined", 402)
    await w.cancel(n)
    await w.deliver()

    w.at(timedelta(0))


EXPECTED_ORDERS = {
    "30m": {"total": 4, "successful": 1, "failed": 1, "pending": 1, "cancelled": 1},
    "1h": {"total": 6, "successful": 3, "failed": 1, "pending": 1, "cancelled": 1},
    "24h": {"total": 10, "successful": 5, "failed": 2, "pending": 1, "cancelled": 2},
    "7d": {"total": 12, "successful": 7, "failed": 2, "pending": 1, "cancelled": 2},
}
EXPECTED_REVENUE = {
    "30m": {"usd": 20.0},
    "1h": {"usd": 20.0},
    "24h": {"usd": 129.97, "jpy": 4000},
    "7d": {"usd": 229.94, "eur": 51.0, "jpy": 4000},
}


async def metrics(h: Harness, time_range: str | None) -> dict[str, Any]:
    params = {} if time_range is None else {"timeRange": time_range}
    response = await h.client.get("/api/monitoring/metrics", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture
async def world(make_harness: Callable[..., Any]) -> World:
    w = await make_world(make_harness)
    await script_orders(w)
    return w


async def test_orders_and_revenue_per_range(world: World) -> None:
    for name, expected in EXPECTED_ORDERS.items():
        data = await metrics(world.harness, name)
        assert data["timeRange"] == {"start": iso_ms(Q - RANGES[name]), "end": iso_ms(Q)}, name
        # each order in exactly one bucket; total is their sum
        assert data["orders"] == expected, name
        revenue = data["revenue"]
        assert revenue["currency"] == "usd", name
        assert revenue["total"] == EXPECTED_REVENUE[name]["usd"], name
        assert revenue["byCurrency"] == EXPECTED_REVENUE[name], name
        if "jpy" in revenue["byCurrency"]:
            # no minor unit: an integer on the wire
            assert isinstance(revenue["byCurrency"]["jpy"], int), name
    # exact decimals on the wire, never float noise such as 229.93999999999997
    response = await world.client.get(
        "/api/monitoring/metrics", params={"timeRange": "7d"}, headers=AUTH
    )
    text = response.text.replace(" ", "")
    assert '"total":229.94,' in text
    assert '"jpy":4000' in text and '"jpy":4000.0' not in text


async def test_integration_calls_and_errors_per_range(world: World) -> None:
    assert world.provider.in_range(T0, Q + timedelta(seconds=1))["errors"] == 1
    for name, span in RANGES.items():
        start = Q - span
        data = await metrics(world.harness, name)
        integrations = data["integrations"]
        assert set(integrations) == {"sandbox", "emailFile", "csv", "notificationsFile"}, name
        assert integrations["sandbox"] == world.provider.in_range(start, Q), name
        for key in ("emailFile", "csv", "notificationsFile"):
            assert integrations[key] == world.attempts.in_range(key, start, Q), (name, key)
    # the scripted failures are where they were put
    last_day = (await metrics(world.harness, "24h"))["integrations"]
    assert last_day["emailFile"]["errors"] == 1
    assert last_day["notificationsFile"]["errors"] == 1
    assert last_day["sandbox"]["errors"] == 1  # the outage; declines are answers, not errors
    assert last_day["csv"]["errors"] == 0
    half_hour = (await metrics(world.harness, "30m"))["integrations"]
    assert half_hour["emailFile"]["errors"] == 0
    assert half_hour["notificationsFile"]["errors"] == 1
    assert half_hour["sandbox"]["errors"] == 0
    assert half_hour["sandbox"]["calls"] > 0


async def test_default_and_equivalent_time_ranges(world: World) -> None:
    default = await metrics(world.harness, None)
    assert default == await metrics(world.harness, "24h")
    assert default["timeRange"]["start"] == iso_ms(Q - timedelta(hours=24))
    assert await metrics(world.harness, "1440m") == default
    assert await metrics(world.harness, "60m") == await metrics(world.harness, "1h")
    assert await metrics(world.harness, "168h") == await metrics(world.harness, "7d")
    longest = await metrics(world.harness, "90d")
    assert longest["orders"]["total"] == 13  # the 8-day-old order too
    assert longest["revenue"]["total"] == 339.91
    assert longest == await metrics(world.harness, "2160h")


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "0h",
        "91d",
        "5w",
        "-1h",
        "2161h",
        "129601m",
        "",
        "1.5h",
        "24 h",
        " 24h",
        "24h\n",
        "24H",
        "1y",
        "h",
        "99999999999h",
    ],
)
async def test_bad_time_range_is_400(harness: Harness, value: str) -> None:
    await harness.rejects_query("/api/monitoring/metrics", "timeRange", value)


async def test_metrics_need_credentials(harness: Harness) -> None:
    await harness.refused("/api/monitoring/metrics")


async def test_an_empty_store_reports_zeroes(harness: Harness) -> None:
    data = await metrics(harness, "24h")
    assert data["orders"] == {
        "total": 0,
        "successful": 0,
        "failed": 0,
        "pending": 0,
        "cancelled": 0,
    }
    assert data["revenue"]["total"] == 0
    assert data["revenue"]["currency"] == "usd"
    for counts in data["integrations"].values():
        assert counts == {"calls": 0, "errors": 0}


async def test_reporting_currency_and_other_instances_on_the_same_store(
    world: World, make_harness: Callable[..., Any]
) -> None:
    url = world.harness.settings.database_url
    other: Harness = await make_harness(
        clock=world.clock, integrations=Recorders().integrations(), database_url=url
    )
    in_eur: Harness = await make_harness(
        clock=world.clock,
        integrations=Recorders().integrations(),
        database_url=url,
        reporting_currency="EUR",
    )
    for name in RANGES:
        mine = await metrics(world.harness, name)
        assert await metrics(other, name) == mine, name
        theirs = await metrics(in_eur, name)
        assert theirs["revenue"]["currency"] == "eur", name
        assert theirs["revenue"]["total"] == EXPECTED_REVENUE[name].get("eur", 0), name
        assert theirs["revenue"]["byCurrency"] == mine["revenue"]["byCurrency"], name
        assert {k: v for k, v in theirs.items() if k != "revenue"} == {
            k: v for k, v in mine.items() if k != "revenue"
        }, name
    # an order made through the other instance is seen by the first one at once
    response = await other.create_order(order_body())
    assert response.status_code == 201
    world.clock.advance(seconds=1)
    assert (await metrics(world.harness, "30m"))["orders"]["pending"] == 2
    assert (await metrics(in_eur, "30m"))["orders"]["pending"] == 2
