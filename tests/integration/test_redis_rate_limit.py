"""Two app instances sharing one Redis let through exactly the limit (SPEC §5)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from tests.fixtures.app import AUTH, Harness


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
