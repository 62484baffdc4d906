"""SPEC §11 and §3 `GET /metrics`: Prometheus text, parsed with prometheus_client's own
parser. Request counters and latency histograms are labelled by route template; the
outbox backlog and orders by status are read from the store, so every instance on one
store reports the same."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from orderhub.delivery.integrations.base import TransientDeliveryError
from orderhub.kit.clock import FrozenClock
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.integrations import recorded_harness
from tests.fixtures.prometheus import Scrape

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ORDER_ROUTE = "/api/orders/{order_id}"


async def scrape(h: Harness, **headers: str) -> Scrape:
    response = await h.client.get("/metrics", headers={**AUTH, **headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def pending_deliveries(h: Harness) -> int:
    total, last_key = 0, None
    while True:
        params: dict[str, Any] = {"status": "pending", "limit": 100}
        if last_key:
            params["lastKey"] = last_key
        response = await h.client.get("/api/monitoring/deliveries", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        total += len(body["data"])
        if not body["pagination"]["hasMore"]:
            return total
        last_key = body["pagination"]["lastKey"]


# -- access --------------------------------------------------------------------------------


async def test_metrics_need_credentials_unless_public(make_harness: Callable[..., Any]) -> None:
    private: Harness = await make_harness()
    refused = await private.client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["success"] is False
    assert "WWW-Authenticate" in refused.headers
    wrong = await private.client.get("/metrics", headers={"X-API-Key": "wrong-key-000000000"})
    assert wrong.status_code == 401
    assert "orderhub_" in (await scrape(private)).text

    public: Harness = await make_harness(metrics_public=True)
    open_scrape = await public.client.get("/metrics")
    assert open_scrape.status_code == 200, open_scrape.text
    assert Scrape(open_scrape.text).names()  # parses


async def test_the_documented_families_are_there(harness: Harness) -> None:
    await harness.client.get("/api/orders", headers=AUTH)
    names = (await scrape(harness)).names()
    for name in (
        "orderhub_http_requests_total",
        "orderhub_http_request_duration_seconds_count",
        "orderhub_http_request_duration_seconds_bucket",
        "orderhub_outbox_backlog",
        "orderhub_outbox_oldest_pending_age_seconds",
    ):
        assert name in names, name


# -- HTTP requests by route template ------------------------------------------------------------


async def test_requests_are_counted_by_route_template(harness: Harness) -> None:
    created = await harness.create_order()
    order_id = created.json()["data"]["order"]["id"]
    before = await scrape(harness)
    for _ in range(3):
        ok = await harness.client.get(f"/api/orders/{order_id}", headers=AUTH)
        assert ok.status_code == 200
    for _ in range(2):
        missing = await harness.client.get(f"/api/orders/{uuid.uuid4()}", headers=AUTH)
        assert missing.status_code == 404
    after = await scrape(harness)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    requests = "orderhub_http_requests_total"
    assert delta(requests, method="GET", route=ORDER_ROUTE, status="200") == 3
    assert delta(requests, method="GET", route=ORDER_ROUTE, status="404") == 2
    assert delta(requests, route=ORDER_ROUTE) == 5
    histogram = "orderhub_http_request_duration_seconds"
    assert delta(f"{histogram}_count", method="GET", route=ORDER_ROUTE) == 5
    assert delta(f"{histogram}_bucket", method="GET", route=ORDER_ROUTE, le="+Inf") == 5
    assert delta(f"{histogram}_sum", method="GET", route=ORDER_ROUTE) > 0
    # raw paths never become labels (one series per route, not per order)
    assert order_id not in after.text
    routes = {s.labels.get("route") for s in after.samples if s.name == requests}
    assert "/api/orders" in routes  # the create
    assert all("{" in r or r.count("/") <= 3 for r in routes if r), routes


async def test_latency_histogram_is_by_route_template_and_status(harness: Harness) -> None:
    """SPEC §11: "HTTP requests and latency histograms by route template and status"."""
    before = await scrape(harness)
    missing = await harness.client.get(f"/api/orders/{uuid.uuid4()}", headers=AUTH)
    assert missing.status_code == 404
    after = await scrape(harness)
    name = "orderhub_http_request_duration_seconds_count"
    labels = {"method": "GET", "route": ORDER_ROUTE, "status": "404"}
    assert after.value(name, **labels) - before.value(name, **labels) == 1


class Exploding:
    async def get(self, order_id: str) -> object:
        raise RuntimeError("boom")


async def test_errors_and_unknown_routes_are_counted_without_raw_paths(harness: Harness) -> None:
    before = await scrape(harness)
    original = harness.container.orders
    harness.container.orders = Exploding()  # type: ignore[assignment]
    failed = await harness.client.get(f"/api/orders/{uuid.uuid4()}", headers=AUTH)
    harness.container.orders = original
    assert failed.status_code == 500
    unknown = await harness.client.get("/no/such/route-4711", headers=AUTH)
    assert unknown.status_code == 404
    after = await scrape(harness)
    requests = "orderhub_http_requests_total"
    assert (
        after.value(requests, route=ORDER_ROUTE, status="500")
        - before.value(requests, route=ORDER_ROUTE, status="500")
        == 1
    )
    assert after.value(requests, status="404") - before.value(requests, status="404") == 1
    assert "route-4711" not in after.text


# -- deliveries, backlog and orders -----------------------------------------------------------


async def test_deliveries_by_integration_and_outcome(make_harness: Callable[..., Any]) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.failures = [TransientDeliveryError("HTTP 503")]
    assert (await h.create_order()).status_code == 201
    before = await scrape(h)
    assert await h.container.worker.run_once() == 3
    after = await scrape(h)

    def delta(a: Scrape, b: Scrape, **labels: str) -> float:
        name = "orderhub_deliveries_total"
        return b.value(name, **labels) - a.value(name, **labels)

    assert delta(before, after, integration="email", outcome="delivered") == 1
    assert delta(before, after, integration="sheets", outcome="delivered") == 1
    assert delta(before, after, integration="notifications", outcome="delivered") == 0
    assert delta(before, after, integration="notifications") == 1  # one failed attempt
    clock.advance(seconds=5)
    assert await h.container.worker.run_once() == 1  # the retry
    last = await scrape(h)
    assert delta(after, last, integration="notifications", outcome="delivered") == 1
    assert delta(after, last, integration="notifications") == 1
    assert delta(after, last, integration="email") == 0


async def test_backlog_and_orders_come_from_the_store(make_harness: Callable[..., Any]) -> None:
    h, _rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    other, _other_rec, _ = await recorded_harness(
        make_harness, clock, database_url=h.settings.database_url
    )
    orders = [(await h.create_order()).json()["data"]["order"] for _ in range(3)]
    paid = await h.confirm(orders[0])
    assert paid.status_code == 200
    cancelled = await other.client.delete(f"/api/orders/{orders[1]['id']}", headers=AUTH)
    assert cancelled.status_code == 200
    clock.advance(seconds=90)

    waiting = await pending_deliveries(h)
    assert waiting == 15  # 3 created + 1 paid + 1 cancelled, to 3 integrations each
    for instance in (h, other):
        s = await scrape(instance)
        assert s.value("orderhub_outbox_backlog") == waiting
        assert s.value("orderhub_outbox_oldest_pending_age_seconds") == 90
        assert s.value("orderhub_orders", status="pending") == 1
        assert s.value("orderhub_orders", status="paid") == 1
        assert s.value("orderhub_orders", status="cancelled") == 1

    while await other.container.worker.run_once():
        pass
    assert await pending_deliveries(h) == 0
    for instance in (h, other):
        s = await scrape(instance)
        assert s.value("orderhub_outbox_backlog") == 0
        assert s.value("orderhub_outbox_oldest_pending_age_seconds") == 0


async def test_a_status_that_empties_goes_back_to_zero(make_harness: Callable[..., Any]) -> None:
    """The gauge is the store's count at each scrape, not the last non-zero one."""
    h, _rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    order = (await h.create_order()).json()["data"]["order"]
    assert (await scrape(h)).value("orderhub_orders", status="pending") == 1
    paid = await h.confirm(order)
    assert paid.status_code == 200
    s = await scrape(h)
    assert s.value("orderhub_orders", status="paid") == 1
    assert s.value("orderhub_orders", status="pending") == 0


async def test_unknown_methods_share_one_label(make_harness: Any) -> None:
    h = await make_harness(metrics_public=True)
    for n in range(3):
        await h.client.request(f"X{n}ZZ", "/api/orders")
    text = (await h.client.get("/metrics")).text
    assert 'method="X0ZZ"' not in text
    assert 'method="other"' in text
