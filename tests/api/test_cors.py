"""CORS_ORIGINS: allowed origins get CORS headers (and see the rate-limit headers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fixtures.app import AUTH, Harness


async def test_allowed_origin_preflight_and_response(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(cors_origins="https://shop.example")
    preflight = await h.client.options(
        "/api/orders",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-API-Key, Idempotency-Key, Content-Type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "x-api-key" in allowed and "idempotency-key" in allowed
    response = await h.client.get("/api/orders", headers={**AUTH, "Origin": "https://shop.example"})
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert "x-ratelimit-remaining" in response.headers["access-control-expose-headers"].lower()


async def test_other_origins_get_no_cors_headers(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(cors_origins="https://shop.example")
    response = await h.client.get("/api/orders", headers={**AUTH, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = await h.client.options(
        "/api/orders",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert preflight.json() == {
        "success": False,
        "error": {"message": "Disallowed CORS origin", "code": "cors_rejected"},
    }


async def test_no_cors_by_default(harness: Harness) -> None:
    response = await harness.client.get(
        "/api/orders", headers={**AUTH, "Origin": "https://shop.example"}
    )
    assert "access-control-allow-origin" not in response.headers
