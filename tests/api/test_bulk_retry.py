"""Bulk retry: `POST /api/monitoring/deliveries/retry` puts every matching dead delivery
back in the queue, answers how many, and is safe to repeat."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from orderhub.delivery.integrations.base import PermanentDeliveryError
from orderhub.delivery.model import DeliveryFilter, DeliveryStatus, Integration
from orderhub.kit.clock import FrozenClock, iso_ms
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.integrations import Recorders, recorded_harness

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "/api/monitoring/deliveries/retry"


async def _drain(h: Harness) -> None:
    while await h.container.worker.run_once() > 0:
        pass


async def _dead(h: Harness) -> list[Any]:
    return await h.container.store.deliveries.list_page(
        DeliveryFilter(status=DeliveryStatus.DEAD), None, 1000
    )


async def _setup(make_harness: Callable[..., Any]) -> tuple[Harness, Recorders, FrozenClock]:
    """Two orders two hours apart whose email and notification deliveries went dead."""
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.email.script.failures = [PermanentDeliveryError("550 mailbox unavailable")] * 2
    rec.notifications.script.failures = [PermanentDeliveryError("HTTP 410")] * 2
    for _ in range(2):
        assert (await h.create_order()).status_code == 201
        await _drain(h)
        clock.advance(hours=2)
    assert len(await _dead(h)) == 4
    return h, rec, clock


async def test_bulk_retry_puts_dead_back_once_and_delivers_each_once(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, _clock = await _setup(make_harness)
    answer = await h.client.post(URL, json={"status": "dead"}, headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == {
        "success": True,
        "data": {"retried": 4},
        "message": "4 deliveries queued",
    }
    again = await h.client.post(URL, json={"status": "dead"}, headers=AUTH)
    assert again.json()["data"] == {"retried": 0}
    assert await _dead(h) == []
    await _drain(h)
    assert len(rec.email.sent) == 2
    assert len(rec.notifications.published) == 2
    assert sorted(rec.notifications.count_by_event().values()) == [1, 1]


async def test_bulk_retry_by_integration_and_since(make_harness: Callable[..., Any]) -> None:
    h, _rec, clock = await _setup(make_harness)
    body = {"status": "dead", "integration": "email", "since": "3h"}  # the second order only
    answer = await h.client.post(URL, json=body, headers=AUTH)
    assert answer.json()["data"] == {"retried": 1}
    left = await _dead(h)
    assert sorted(d.integration.value for d in left) == ["email", "notifications", "notifications"]
    moment = iso_ms(clock.now() - timedelta(hours=5))  # an ISO time: both orders
    answer = await h.client.post(
        URL, json={"status": "dead", "integration": "notifications", "since": moment}, headers=AUTH
    )
    assert answer.json()["data"] == {"retried": 2}
    assert [d.integration for d in await _dead(h)] == [Integration.EMAIL]


async def test_bulk_retry_replays_with_an_idempotency_key(
    make_harness: Callable[..., Any],
) -> None:
    h, _rec, _clock = await _setup(make_harness)
    headers = {**AUTH, "Idempotency-Key": "retry-1"}
    first = await h.client.post(URL, json={"status": "dead"}, headers=headers)
    replay = await h.client.post(URL, json={"status": "dead"}, headers=headers)
    assert first.json()["data"] == replay.json()["data"] == {"retried": 4}
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = await h.client.post(
        URL, json={"status": "dead", "integration": "email"}, headers=headers
    )
    assert other.status_code == 422


async def test_bad_bulk_retry_is_a_400_and_changes_nothing(
    make_harness: Callable[..., Any],
) -> None:
    h, _rec, _clock = await _setup(make_harness)
    cases: list[tuple[Any, str]] = [
        ({}, "Validation error: status"),
        ({"status": "pending"}, "Validation error: status"),
        ({"status": "dead", "integration": "fax"}, "Validation error: integration"),
        ({"status": "dead", "since": "yesterday"}, "Validation error: since must be a duration"),
        ({"status": "dead", "since": 7}, "Validation error: since"),
        ({"status": "dead", "extra": 1}, "Validation error: extra is not a known field"),
        ([], "Validation error: body must be a JSON object"),
    ]
    for body, message in cases:
        answer = await h.client.post(URL, json=body, headers=AUTH)
        assert answer.status_code == 400, body
        assert answer.json()["success"] is False
        assert answer.json()["error"]["message"].startswith(message), answer.json()
    unauthenticated = await h.client.post(URL, json={"status": "dead"})
    assert unauthenticated.status_code == 401
    assert len(await _dead(h)) == 4
