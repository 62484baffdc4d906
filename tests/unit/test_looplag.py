"""kit.looplag: a send timed while the loop was late says nothing about its receiver."""

from __future__ import annotations

import asyncio
import time

from orderhub.kit.looplag import LoopLag


async def test_nothing_watching_means_quiet() -> None:
    assert LoopLag().quiet_since(time.perf_counter() - 10)


async def test_a_blocked_loop_is_not_quiet_until_it_runs_on_time_again() -> None:
    lag = LoopLag(interval=0.01, late=0.05)
    stop = asyncio.Event()
    watching = asyncio.create_task(lag.watch(stop))
    try:
        await asyncio.sleep(0.05)
        began = time.perf_counter()
        await asyncio.sleep(0.05)
        assert lag.quiet_since(began)  # on time
        began = time.perf_counter()
        time.sleep(0.2)  # something holds the loop
        assert not lag.quiet_since(began)  # the watcher is late right now
        await asyncio.sleep(0.05)
        assert not lag.quiet_since(began)  # and it saw it once it woke
        later = time.perf_counter()
        await asyncio.sleep(0.05)
        assert lag.quiet_since(later)
    finally:
        stop.set()
        await asyncio.wait_for(watching, 5)
    assert lag.quiet_since(0.0)  # stopped: nothing watches
