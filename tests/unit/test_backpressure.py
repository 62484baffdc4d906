"""kit.backpressure: order changes wait while the worker is behind, never forever."""

from __future__ import annotations

import asyncio

from orderhub.kit.backpressure import Backpressure


async def test_an_open_valve_lets_work_through_at_once() -> None:
    valve = Backpressure(30)
    assert not valve.held
    await asyncio.wait_for(valve.wait(), 5)


async def test_a_held_valve_makes_work_wait_until_it_is_released() -> None:
    valve = Backpressure(30)
    valve.hold()
    waiting = [asyncio.create_task(valve.wait()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)  # still held: nobody went ahead
    valve.release()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert not valve.held


async def test_a_valve_held_for_good_lets_work_through_after_max_wait() -> None:
    valve = Backpressure(0.05)
    valve.hold()
    await asyncio.wait_for(valve.wait(), 5)  # a stuck worker does not stop the intake
    assert valve.held


async def test_max_wait_zero_turns_it_off() -> None:
    valve = Backpressure(0)
    valve.hold()
    assert not valve.held
    await asyncio.wait_for(valve.wait(), 5)


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    valve = Backpressure(30)
    valve.hold()
    task = asyncio.create_task(valve.wait())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    valve.release()  # does not trip over the cancelled waiter
    await asyncio.wait_for(valve.wait(), 5)
