"""SPEC §8 Idempotency-Key on POST /api/orders and DELETE /api/orders/:id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from starlette.responses import Response

from orderhub.idempotency.service import IdempotencyService
from orderhub.kit.clock import FrozenClock, SystemClock
from orderhub.kit.envelope import ok
from orderhub.kit.errors import Conflict
from orderhub.payments.provider import ProviderError
from orderhub.payments.sandbox import SandboxPaymentProvider
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.orders import order_body


async def _count_orders(h: Harness) -> int:
    response = await h.client.get("/api/orders?limit=100", headers=AUTH)
    return len(response.json()["data"])


async def test_replay_returns_the_first_response(harness: Harness) -> None:
    first = await harness.create_order(**{"Idempotency-Key": "k1"})
    second = await harness.create_order(**{"Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await _count_orders(harness) == 1


async def test_same_json_in_another_key_order_is_the_same_request(harness: Harness) -> None:
    body = order_body()
    reordered = dict(reversed(list(body.items())))
    first = await harness.create_order(body, **{"Idempotency-Key": "k2"})
    second = await harness.create_order(reordered, **{"Idempotency-Key": "k2"})
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()


async def test_different_request_same_key_is_422(harness: Harness) -> None:
    await harness.create_order(**{"Idempotency-Key": "k3"})
    other = await harness.create_order(order_body(customerName="Jane"), **{"Idempotency-Key": "k3"})
    assert other.status_code == 422
    assert other.json()["success"] is False
    assert await _count_orders(harness) == 1


async def test_keys_are_scoped_to_the_caller(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(api_keys="caller-a-key,caller-b-key")
    body = order_body()
    a = await h.client.post(
        "/api/orders", json=body, headers={"X-API-Key": "caller-a-key", "Idempotency-Key": "same"}
    )
    b = await h.client.post(
        "/api/orders", json=body, headers={"X-API-Key": "caller-b-key", "Idempotency-Key": "same"}
    )
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["data"]["order"]["id"] != b.json()["data"]["order"]["id"]


async def test_validation_failures_are_not_remembered(harness: Harness) -> None:
    bad = await harness.create_order(order_body(totalAmount=1), **{"Idempotency-Key": "k4"})
    assert bad.status_code == 400
    fixed = await harness.create_order(**{"Idempotency-Key": "k4"})
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers


async def test_twenty_concurrent_creates_make_one_order(harness: Harness) -> None:
    responses = await asyncio.gather(
        *(harness.create_order(**{"Idempotency-Key": "burst"}) for _ in range(20))
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["data"]["order"]["id"] for r in created}) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_in_flight"
    assert await _count_orders(harness) == 1


class FailingOnceProvider:
    """The sandbox, failing its first create as a provider timeout would."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.name = "sandbox"
        self.calls: list[str] = []

    async def create_intent(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs["idempotency_key"])
        if len(self.calls) == 1:
            raise ProviderError("timeout")
        return await self.inner.create_intent(**kwargs)

    async def probe(self) -> None:
        """Always answers (the sandbox it wraps is set once the harness has a store)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_provider_failure_is_502_not_remembered_and_retry_reuses_the_order_id(
    make_harness: Callable[..., Any],
) -> None:
    provider = FailingOnceProvider()
    harness: Harness = await make_harness(payments=provider)
    provider.inner = SandboxPaymentProvider(harness.container.store.sandbox, SystemClock())
    failed = await harness.create_order(**{"Idempotency-Key": "k5"})
    assert failed.status_code == 502
    assert failed.json()["success"] is False
    assert await _count_orders(harness) == 0
    retried = await harness.create_order(**{"Idempotency-Key": "k5"})
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    # both attempts used the same order id, hence the same provider idempotency key
    assert provider.calls[0] == provider.calls[1]
    assert provider.calls[1] == f"order:{retried.json()['data']['order']['id']}"


async def test_in_flight_is_409_and_the_lock_expires_after_60_seconds(
    make_harness: Callable[..., Any],
) -> None:
    clock = FrozenClock(SystemClock().now())
    h: Harness = await make_harness(clock=clock)
    service = IdempotencyService(h.container.store.idempotency, clock, 24)
    request = {
        "caller": "env:x",
        "key": "k6",
        "method": "POST",
        "path": "/p",
        "canonical_body": "{}",
    }
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow(_id: uuid.UUID) -> Response:
        started.set()
        await finish.wait()
        return ok({"first": True})

    async def quick(_id: uuid.UUID) -> Response:
        return ok({"second": True})

    first = asyncio.create_task(service.run(**request, handler=slow))  # type: ignore[arg-type]
    await started.wait()
    with pytest.raises(Conflict):
        await service.run(**request, handler=quick)  # type: ignore[arg-type]
    clock.advance(seconds=61)  # the first attempt is presumed dead: its lock has expired
    taken_over = await service.run(**request, handler=quick)  # type: ignore[arg-type]
    assert taken_over.status_code == 200
    assert json.loads(bytes(taken_over.body)) == {"success": True, "data": {"second": True}}
    finish.set()
    await first


async def test_replay_expires_after_ttl(make_harness: Callable[..., Any]) -> None:
    clock = FrozenClock(SystemClock().now())
    h: Harness = await make_harness(clock=clock, idempotency_ttl_hours=1)
    first = await h.create_order(**{"Idempotency-Key": "k7"})
    clock.advance(hours=2)
    again = await h.create_order(**{"Idempotency-Key": "k7"})
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["data"]["order"]["id"] != first.json()["data"]["order"]["id"]


async def test_delete_is_idempotent(harness: Harness) -> None:
    order_id = (await harness.create_order()).json()["data"]["order"]["id"]
    headers = {**AUTH, "Idempotency-Key": "del-1"}
    first = await harness.client.delete(f"/api/orders/{order_id}", headers=headers)
    second = await harness.client.delete(f"/api/orders/{order_id}", headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    # without the key the second cancel is a state conflict
    third = await harness.client.delete(f"/api/orders/{order_id}", headers=AUTH)
    assert third.status_code == 409


async def test_bad_key_is_400(harness: Harness) -> None:
    response = await harness.create_order(**{"Idempotency-Key": "x" * 300})
    assert response.status_code == 400
    assert await _count_orders(harness) == 0
