"""The worker's periodic loop: runs, skips a failing pass, stops at once."""

from __future__ import annotations

import asyncio

import pytest

from orderhub.kit.periodic import run_every
from orderhub.store.protocol import StoreError


async def test_runs_each_interval_skips_failures_and_stops() -> None:
    stop = asyncio.Event()
    passes: list[int] = []

    async def step() -> None:
        passes.append(len(passes))
        if len(passes) == 2:
            raise StoreError("down for a moment")
        if len(passes) == 4:
            stop.set()

    await asyncio.wait_for(
        run_every(stop, 0.001, step, name="test", skip_on=(StoreError,)), timeout=5
    )
    assert passes == [0, 1, 2, 3]


async def test_wait_first_and_an_early_stop_run_nothing() -> None:
    stop = asyncio.Event()
    stop.set()
    ran: list[bool] = []

    async def step() -> None:
        ran.append(True)

    await run_every(stop, 10, step, name="test", skip_on=(StoreError,), wait_first=True)
    assert ran == []


async def test_an_unexpected_error_ends_the_loop() -> None:
    async def step() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await run_every(asyncio.Event(), 0.001, step, name="test", skip_on=(StoreError,))
