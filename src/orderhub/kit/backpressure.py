"""Backpressure: new work waits while the work it causes is behind.

An order change commits its deliveries with it; the in-process delivery worker sends
them. On one core the two compete, and a saturated API starves the worker: the outbox
then grows without bound and drains only after the load ends. `Backpressure` is the
valve between them: the worker holds it while it is behind (its last lease came back
full, so more is due than one batch, and none of it goes to a slow receiver: see
`delivery.pace`) and releases it when it has caught up; an order
change waits at the start of its use case while it is held, for at most `max_wait`
seconds, and then goes ahead anyway (an intake that a stuck worker stopped for good
would be worse than a backlog). Nothing is refused and nothing is lost: a waiting
request has done no work yet, and what the worker is behind on is committed already.

A process without a worker never holds it, so it costs an `API` process nothing; with
`max_wait` 0 it is off.
"""

from __future__ import annotations

import asyncio


class Backpressure:
    def __init__(self, max_wait: float) -> None:
        self._max_wait = max_wait
        self._held = False
        # one future per waiting request, made on its own running loop (an asyncio.Event
        # would bind to the first loop that waits on it)
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def held(self) -> bool:
        return self._held

    def hold(self) -> None:
        """The worker is behind: new work waits from now on."""
        if self._max_wait > 0:
            self._held = True

    def release(self) -> None:
        """The worker has caught up (or stopped): new work goes ahead."""
        self._held = False
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Return once released, or after `max_wait` seconds of waiting."""
        if not self._held:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, self._max_wait)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)
