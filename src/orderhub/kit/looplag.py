"""How late the event loop runs: a watcher task asks to be woken every `interval` seconds
and notes when it was woken `late` seconds or more after that.

The delivery worker times its sends to learn which receivers are slow (`delivery.pace`).
A send that took long while the loop was late says nothing about its receiver: the loop
was busy with other work (a saturated API). `quiet_since` tells the two apart.
"""

from __future__ import annotations

import asyncio
import time

INTERVAL_SECONDS = 0.05
LATE_SECONDS = 0.05


class LoopLag:
    def __init__(self, interval: float = INTERVAL_SECONDS, late: float = LATE_SECONDS) -> None:
        self._interval = interval
        self._late = late
        self._due: float | None = None  # when the watcher should wake next (None: no watcher)
        self._late_at = float("-inf")  # the last time it woke late (time.perf_counter)

    async def watch(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set."""
        try:
            while not stop.is_set():
                self._due = time.perf_counter() + self._interval
                await asyncio.sleep(self._interval)
                woke = time.perf_counter()
                if woke - self._due >= self._late:
                    self._late_at = woke
        finally:
            self._due = None

    def quiet_since(self, started: float) -> bool:
        """The loop ran on time from `started` (a `time.perf_counter()` reading) until now, as
        far as the watcher saw; True when nothing watches."""
        if self._due is None:
            return True
        return self._late_at < started and time.perf_counter() - self._due < self._late
