"""The worker's periodic passes (probes, refund re-sends, counter compaction): one loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


async def run_every(
    stop: asyncio.Event,
    interval: float,
    step: Callable[[], Awaitable[object]],
    *,
    name: str,
    skip_on: tuple[type[Exception], ...],
    wait_first: bool = False,
) -> None:
    """Run `step` every `interval` seconds until `stop` is set (first after one interval
    when `wait_first`). A failure in `skip_on` is logged as `<name>_skipped` and the next
    pass tries again; anything else ends the loop, as a bug should."""
    if wait_first and await _stopped(stop, interval):
        return
    while not stop.is_set():
        try:
            await step()
        except skip_on as exc:
            log.warning(f"{name}_skipped", error=str(exc))
        if await _stopped(stop, interval):
            return


async def _stopped(stop: asyncio.Event, interval: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), interval)
    return stop.is_set()
