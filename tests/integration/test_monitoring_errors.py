"""SPEC §11 `GET /api/monitoring/errors`: the operators' error log, kept in the store.

Errors are produced the way they happen in production: a delivery the receiver refuses, a
payment provider that cannot be reached when an order is created, a webhook whose object
does not match its order, and an unhandled exception in a request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orderhub.delivery.integrations.base import PermanentDeliveryError, TransientDeliveryError
from orderhub.kit.clock import FrozenClock, iso_ms
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.integrations import UnreachableProvider, recorded_harness
from tests.fixtures.stripe_server import WEBHOOK_SECRET, make_event, signed_webhook

T0 = datetime(2026, 3, 1, 12, 0, 0, 125_000, tzinfo=UTC)
ERROR_KEYS = {"timestamp", "level", "message", "service", "orderId", "error"}
SERVICES = {
    "orderService",
    "paymentService",
    "emailService",
    "sheetsService",
    "notificationService",
    "webhookService",
    "http",
}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Exploding:
    """An order service whose every read fails with an unexpected exception."""

    async def get(self, order_id: str) -> Any:
        raise RuntimeError("boom: SELECT secret FROM somewhere")


async def errors(h: Harness, **params: Any) -> dict[str, Any]:
    response = await h.client.get("/api/monitoring/errors", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    data: dict[str, Any] = body["data"]
    assert set(data) == {"errors", "count", "period"}
    assert data["count"] == len(data["errors"])
    assert data["period"] == "24h"
    for item in data["errors"]:
        assert set(item) == ERROR_KEYS
        assert item["service"] in SERVICES
        assert item["level"] in {"error", "warning"}
        assert ISO_MS.match(item["timestamp"])
    return data


async def explode(h: Harness, times: int = 1) -> None:
    """`times` requests that end in an unhandled exception (then the real service again)."""
    original = h.container.orders
    h.container.orders = Exploding()  # type: ignore[assignment]
    try:
        for _ in range(times):
            response = await h.client.get(f"/api/orders/{uuid.uuid4()}", headers=AUTH)
            assert response.status_code == 500
    finally:
        h.container.orders = original


# -- what gets in -----------------------------------------------------------------------------


async def test_a_refused_delivery_is_a_notification_service_error(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    assert await errors(h) == {"errors": [], "count": 0, "period": "24h"}
    rec.notifications.script.failures = [PermanentDeliveryError("HTTP 410: topic gone")]
    order = (await h.create_order()).json()["data"]["order"]
    await h.container.worker.run_once()

    data = await errors(h)
    assert data["count"] == 1
    (item,) = data["errors"]
    assert item["service"] == "notificationService"
    assert item["orderId"] == order["id"]
    assert item["level"] == "error"  # dead at once
    assert item["error"] == "HTTP 410: topic gone"
    assert isinstance(item["message"], str) and item["message"]
    assert item["timestamp"] == iso_ms(T0) == "2026-03-01T12:00:00.125Z"

    # a transient failure is kept too, as a warning: the delivery will be retried
    clock.advance(minutes=5)
    rec.email.script.failures = [TransientDeliveryError("SMTP 451: try later")]
    second = (await h.create_order()).json()["data"]["order"]
    await h.container.worker.run_once()
    newest = (await errors(h))["errors"][0]
    assert newest["service"] == "emailService"
    assert newest["level"] == "warning"
    assert newest["orderId"] == second["id"]
    assert newest["error"] == "SMTP 451: try later"
    assert newest["timestamp"] == iso_ms(T0 + timedelta(minutes=5))


async def test_provider_failure_on_create_is_an_order_service_error(
    make_harness: Callable[..., Any],
) -> None:
    h, _rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    recorded: Any = h.container.recorded_payments
    recorded.inner = UnreachableProvider()
    response = await h.create_order()
    assert response.status_code == 502, response.text
    (item,) = (await errors(h))["errors"]
    assert item["service"] == "orderService"
    assert item["level"] == "error"
    assert item["error"] and "connection refused" in item["error"]
    # the order id chosen for the request, although nothing was stored under it
    assert uuid.UUID(item["orderId"])
    missing = await h.client.get(f"/api/orders/{item['orderId']}", headers=AUTH)
    assert missing.status_code == 404


async def test_sheet_and_refund_failures_name_their_services(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.sheets.script.failures = [PermanentDeliveryError("HTTP 400: bad range")]
    order = (await h.create_order()).json()["data"]["order"]
    confirmed = await h.confirm(order)
    assert confirmed.status_code == 200
    await h.container.worker.run_once()
    clock.advance(minutes=1)
    recorded: Any = h.container.recorded_payments
    sandbox, recorded.inner = recorded.inner, UnreachableProvider()
    refund = await h.client.post(
        "/api/payments/refund", json={"orderId": order["id"]}, headers=AUTH
    )
    recorded.inner = sandbox
    assert refund.status_code == 502, refund.text
    items = (await errors(h))["errors"]
    # the refund, then the batch of two sheet deliveries (created, paid) that failed
    assert [(e["service"], e["orderId"]) for e in items] == [
        ("paymentService", order["id"]),
        ("sheetsService", order["id"]),
        ("sheetsService", order["id"]),
    ]
    assert items[1]["error"] == items[2]["error"] == "HTTP 400: bad range"
    assert "connection refused" in (items[0]["error"] or "")


async def test_a_rejected_webhook_is_a_webhook_service_error(
    make_harness: Callable[..., Any],
) -> None:
    h, _rec, _clock = await recorded_harness(
        make_harness, FrozenClock(T0), stripe_webhook_secret=WEBHOOK_SECRET
    )
    order = (await h.create_order()).json()["data"]["order"]
    intent = {
        "id": order["paymentIntentId"],
        "object": "payment_intent",
        "amount": 1,  # the order is 10997
        "amount_received": 1,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"orderId": order["id"]},
    }
    body, headers = signed_webhook(make_event("payment_intent.succeeded", intent), WEBHOOK_SECRET)
    response = await h.client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200, response.text  # recorded, not retried by Stripe
    assert response.json() == {"received": True}
    items = (await errors(h))["errors"]
    assert [e["service"] for e in items] == ["webhookService"]
    assert items[0]["level"] == "error"
    assert items[0]["error"]
    assert items[0]["orderId"] == order["id"]  # the order is known by its intent
    # and the order was not paid by it
    current = await h.client.get(f"/api/orders/{order['id']}", headers=AUTH)
    assert current.json()["data"]["paymentStatus"] == "pending"


async def test_an_unhandled_500_is_an_http_error_without_its_secrets(
    make_harness: Callable[..., Any],
) -> None:
    h, _rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    await explode(h)
    (item,) = (await errors(h))["errors"]
    assert item["service"] == "http"
    assert item["level"] == "error"
    assert item["orderId"] is None
    assert "/api/orders/{order_id}" in item["message"]  # the route, not the raw path
    assert "boom" not in str(item) and "SELECT" not in str(item)
    assert "RuntimeError" not in str(item)


class TooDeep:
    async def get(self, order_id: str) -> Any:
        raise RecursionError("maximum recursion depth exceeded")


async def test_an_unhandled_500_is_told_in_words(make_harness: Callable[..., Any]) -> None:
    h, _rec, _clock = await recorded_harness(make_harness, FrozenClock(T0))
    original, h.container.orders = h.container.orders, TooDeep()  # type: ignore[assignment]
    try:
        response = await h.client.get(
            f"/api/orders/{uuid.uuid4()}", headers={**AUTH, "X-Request-ID": "req-deep-1"}
        )
    finally:
        h.container.orders = original
    assert response.status_code == 500
    (item,) = (await errors(h))["errors"]
    assert item["error"] == "the data was nested too deeply to process; request req-deep-1"
    assert "Recursion" not in str(item) and "Error" not in item["error"]


async def test_a_broken_email_template_is_told_in_words(
    make_harness: Callable[..., Any], tmp_path: Any
) -> None:
    templates = tmp_path / "Shop-Templates"  # mixed case: the path is used as given
    templates.mkdir()
    (templates / "confirmation.subject.j2").write_text("Order {{ nope }}")
    h = await make_harness(email_templates_dir=str(templates))
    order = (await h.create_order()).json()["data"]["order"]
    while await h.container.worker.run_once():
        pass
    response = await h.client.get(
        "/api/monitoring/deliveries", params={"integration": "email"}, headers=AUTH
    )
    (delivery,) = response.json()["data"]
    assert delivery["status"] == "dead"
    expected = (
        "cannot render the order.created email: "
        "a template uses a value that does not exist ('nope' is undefined)"
    )
    assert delivery["lastError"] == expected
    (item,) = (await errors(h))["errors"]
    assert (item["service"], item["orderId"], item["error"]) == (
        "emailService",
        order["id"],
        expected,
    )


# -- order, count and limit ------------------------------------------------------------------


async def test_newest_first_and_limited(make_harness: Callable[..., Any]) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.failures = [PermanentDeliveryError("HTTP 410: gone")]
    await h.create_order()
    await h.container.worker.run_once()  # T0: notificationService
    clock.advance(minutes=1)
    await explode(h)  # T0 + 1 min: http
    clock.advance(minutes=1)
    recorded: Any = h.container.recorded_payments
    sandbox, recorded.inner = recorded.inner, UnreachableProvider()
    assert (await h.create_order()).status_code == 502  # T0 + 2 min: orderService
    recorded.inner = sandbox
    data = await errors(h)
    assert [e["service"] for e in data["errors"]] == [
        "orderService",
        "http",
        "notificationService",
    ]
    assert [e["timestamp"] for e in data["errors"]] == [
        iso_ms(T0 + timedelta(minutes=2)),
        iso_ms(T0 + timedelta(minutes=1)),
        iso_ms(T0),
    ]
    one = await errors(h, limit=1)
    assert one["count"] == 1
    assert one["errors"] == data["errors"][:1]


async def test_default_limit_is_50_and_the_maximum_500(make_harness: Callable[..., Any]) -> None:
    h, _rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    for _ in range(55):
        clock.advance(seconds=1)
        await explode(h)
    default = await errors(h)
    assert default["count"] == 50
    stamps = [e["timestamp"] for e in default["errors"]]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == iso_ms(clock.now())  # the newest is there
    assert (await errors(h, limit=500))["count"] == 55
    assert (await errors(h, limit=55))["count"] == 55
    assert (await errors(h, limit=7))["count"] == 7


@pytest.mark.parametrize("limit", ["501", "0", "-1", "abc", "1.5"])
async def test_bad_limit_is_400(harness: Harness, limit: str) -> None:
    await harness.rejects_query("/api/monitoring/errors", "limit", limit)


async def test_errors_need_credentials(harness: Harness) -> None:
    await harness.refused("/api/monitoring/errors")


# -- the window shown, and what is kept -------------------------------------------------------


async def test_the_last_24_hours_are_shown_and_7_days_kept(
    make_harness: Callable[..., Any],
) -> None:
    h, _rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    kept = h.container.store.errors
    await explode(h)  # at T0
    clock.advance(days=6)
    await explode(h)  # at T0 + 6 d
    clock.advance(hours=23)
    shown = await errors(h)
    assert [e["timestamp"] for e in shown["errors"]] == [iso_ms(T0 + timedelta(days=6))]

    clock.advance(hours=2)  # T0 + 7 d 1 h: the first error is more than 7 days old
    assert len(await kept.recent(500, T0 - timedelta(days=30))) == 2  # not pruned yet
    await h.container.monitoring.probe_and_record()
    remaining = await kept.recent(500, T0 - timedelta(days=30))
    assert [e.at for e in remaining] == [T0 + timedelta(days=6)]
    assert (await errors(h))["count"] == 0  # and nothing in the last 24 h
