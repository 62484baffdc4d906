"""SPEC §5: fixed window per client, headers on every /api/ response, 429 envelope."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.fixtures.app import AUTH, Harness

TOO_MANY = "Too many requests from this IP, please try again later."


async def test_headers_on_every_api_response(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(rate_limit_max=5, rate_limit_window_seconds=60)
    for expected_remaining, headers in ((4, AUTH), (3, {})):  # 200 and 401 both counted
        response = await h.client.get("/api/orders", headers=headers)
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(expected_remaining)
        reset = int(response.headers["X-RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 61


async def test_429_after_the_limit(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(rate_limit_max=3, rate_limit_window_seconds=60)
    statuses = [(await h.client.get("/api/orders", headers=AUTH)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = await h.client.get("/api/orders", headers=AUTH)
    assert response.status_code == 429
    assert response.json() == {
        "success": False,
        "error": {"message": TOO_MANY, "code": "rate_limited"},
    }
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Remaining"] == "0"


async def test_open_endpoints_not_counted(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(rate_limit_max=2, rate_limit_window_seconds=60)
    for _ in range(5):
        for path in ("/health", "/ready", "/openapi.json"):
            response = await h.client.get(path)
            assert response.status_code == 200
            assert "X-RateLimit-Limit" not in response.headers
    assert (await h.client.get("/api/orders", headers=AUTH)).status_code == 200


async def test_spoofed_forwarded_for_does_not_reset_the_count(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(rate_limit_max=2, rate_limit_window_seconds=60)
    codes = []
    for n in range(4):
        response = await h.client.get(
            "/api/orders", headers={**AUTH, "X-Forwarded-For": f"203.0.113.{n}"}
        )
        codes.append(response.status_code)
    assert codes == [200, 200, 429, 429]


async def test_trusted_proxy_forwarded_for_identifies_clients(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(
        rate_limit_max=1, rate_limit_window_seconds=60, trusted_proxies="127.0.0.0/8"
    )
    first = await h.client.get("/api/orders", headers={**AUTH, "X-Forwarded-For": "198.51.100.1"})
    again = await h.client.get("/api/orders", headers={**AUTH, "X-Forwarded-For": "198.51.100.1"})
    other = await h.client.get("/api/orders", headers={**AUTH, "X-Forwarded-For": "198.51.100.2"})
    # a client cannot pick its identity by prepending hops: the rightmost untrusted one counts
    chained = await h.client.get(
        "/api/orders", headers={**AUTH, "X-Forwarded-For": "1.2.3.4, 198.51.100.1"}
    )
    assert [first.status_code, again.status_code, other.status_code, chained.status_code] == [
        200,
        429,
        200,
        429,
    ]


async def test_by_credential(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(
        rate_limit_max=1,
        rate_limit_window_seconds=60,
        rate_limit_by="credential",
        api_keys="key-one-123,key-two-456",
    )
    one = {"X-API-Key": "key-one-123"}
    two = {"X-API-Key": "key-two-456"}
    assert (await h.client.get("/api/orders", headers=one)).status_code == 200
    assert (await h.client.get("/api/orders", headers=one)).status_code == 429
    assert (await h.client.get("/api/orders", headers=two)).status_code == 200
    # unauthenticated requests are counted by IP, apart from the keys
    assert (await h.client.get("/api/orders")).status_code == 401
    assert (await h.client.get("/api/orders")).status_code == 429


async def test_unreachable_redis_lets_requests_pass(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(
        rate_limit_max=1, rate_limit_window_seconds=60, redis_url="redis://127.0.0.1:1/0"
    )
    for _ in range(3):
        response = await h.client.get("/api/orders", headers=AUTH)
        assert response.status_code == 200
        # the limit is still announced; what is left is unknown without the counter store
        assert response.headers["X-RateLimit-Limit"] == "1"
        assert "X-RateLimit-Remaining" not in response.headers
    assert h.container.limiter.failures == 3


async def test_unreachable_redis_shows_in_health_and_metrics(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(redis_url="redis://127.0.0.1:1/0")
    await h.client.get("/api/orders", headers=AUTH)
    health = await h.client.get("/api/monitoring/health", headers=AUTH)
    assert health.status_code == 200
    data = health.json()["data"]
    assert data["services"]["redis"]["status"] == "down"
    assert data["status"] == "degraded"
    scrape = await h.client.get("/metrics", headers=AUTH)
    assert "orderhub_rate_limit_backend_failures 2.0" in scrape.text
