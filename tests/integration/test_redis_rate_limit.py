"""Two app instances sharing one Redis let through exactly the limit (SPEC §5)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import services_required
from tests.fixtures.app import AUTH, Harness

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _redis_up():
        if services_required():
            pytest.fail(
                "Redis is required (ORDERHUB_REQUIRE_SERVICES=1) but 127.0.0.1:6379 is down"
            )
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


async def test_two_instances_share_exactly_the_limit(
    make_harness: Callable[..., Any], redis_url: str
) -> None:
    limit = 25
    # A fresh window per run: both instances share one IP identity but the test owns it.
    client_ip = f"127.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    settings = {"rate_limit_max": limit, "rate_limit_window_seconds": 60, "redis_url": redis_url}
    a: Harness = await make_harness(client_ip=client_ip, **settings)
    b: Harness = await make_harness(client_ip=client_ip, **settings)

    in_flight = asyncio.Semaphore(10)  # concurrent, without starving the event loop

    async def call(h: Harness) -> int:
        async with in_flight:
            return (await h.client.get("/api/orders", headers=AUTH)).status_code

    statuses = await asyncio.gather(*(call(a if n % 2 else b) for n in range(60)))
    assert statuses.count(200) == limit
    assert statuses.count(429) == 60 - limit
    assert a.container.limiter.failures == 0 and b.container.limiter.failures == 0
