"""The delivery worker: lease due deliveries, send them, record every attempt.

Runs inside `orderhub serve` (unless `--no-worker`) and alone as `orderhub worker`; any
number of them may share one store. Leases keep two workers from sending the same
delivery at once; a worker that dies loses nothing (its leases run out and another
worker takes them). Retries back off from 2 s to 15 min until DELIVERY_MAX_AGE_HOURS
after the event, then the delivery is dead. A graceful stop finishes what is in flight
(within a grace period) and gives back what it could not finish, the sheets lease
included.

One integration never holds up another: email and notifications are sent as soon as they
are leased, while sheet deliveries go to a writer task of their own (one at a time per
worker, and across workers under the short `sheets-writer` lease, renewed while a batch
writes). When another worker holds that lease, the sheet deliveries are given back at
once, due again a moment later, instead of waiting for it.

A batch is leased in one store round trip (`leasing.lease_due`), and the outcomes of the
sends that finish together are written together (`_record`): one write transaction on
SQL for all of them, each still conditional on the delivery being this worker's. An
outcome is only ever written after its send; a crash before it is written leaves the
delivery leased, and it is sent again when the lease runs out (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from orderhub.delivery import dispatch
from orderhub.delivery.integrations.base import PermanentDeliveryError, TransientDeliveryError
from orderhub.delivery.leasing import lease_due
from orderhub.delivery.model import (
    LOST_ATTEMPT,
    DeliveryStatus,
    DueDelivery,
    Integration,
    attempt_of,
    delivered,
    failed,
    next_attempt,
    postponed,
)
from orderhub.delivery.pace import ReceiverPace
from orderhub.delivery.registry import Integrations
from orderhub.kit.backpressure import Backpressure
from orderhub.kit.clock import Clock
from orderhub.kit.failures import in_words
from orderhub.kit.looplag import LoopLag
from orderhub.monitoring.error_log import ErrorLog
from orderhub.store.protocol import Store, StoreError, Transition

log = structlog.get_logger(__name__)

SHEETS_LEASE = "sheets-writer"
# Short, and renewed every third of it while a batch writes: a killed holder's lease runs
# out within seconds.
SHEETS_LEASE_SECONDS = 10.0
# A sheet delivery given back because another worker holds the lease is due again after this.
SHEETS_RETRY_SECONDS = 1.0
# At most this many sheet deliveries wait for this worker's writer; more are given back.
SHEETS_QUEUE_LIMIT = 500
# After a sheets batch that took a while, the writer waits this many times as long (at
# most SHEETS_PAUSE_MAX seconds) before the next one, so that rows pile up meanwhile: a
# CSV batch that rewrites the file from an old row on, or a Sheets API round trip, costs
# about the same for one row as for hundreds, and the writer then takes at most a
# quarter of the time (the process's core, or Google's write quota).
SHEETS_PAUSE_FACTOR = 3.0
SHEETS_PAUSE_MAX = 0.5
SHEETS_PAUSE_FROM = 0.02  # a batch quicker than this is followed at once


def sheets_pause(batch_seconds: float) -> float:
    """How long the sheets writer waits after a batch that took `batch_seconds`."""
    if batch_seconds < SHEETS_PAUSE_FROM:
        return 0.0
    return min(batch_seconds * SHEETS_PAUSE_FACTOR, SHEETS_PAUSE_MAX)


# On stopping, the outcomes already sent get this long to be written before the rest is
# given back (what is not written is sent again: at least once).
RECORD_GRACE_SECONDS = 5.0


def new_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        integrations: Integrations,
        clock: Clock,
        error_log: ErrorLog,
        *,
        lease_seconds: int,
        poll_seconds: float,
        max_age_hours: int,
        batch_size: int = 50,
        concurrency: int = 10,
        wake: asyncio.Event | None = None,
        worker_id: str | None = None,
        on_outcome: Callable[[str, str], None] | None = None,
        on_dead: Callable[[DueDelivery, str], Awaitable[object]] | None = None,
        sheets_lease_seconds: float = SHEETS_LEASE_SECONDS,
        backpressure: Backpressure | None = None,
        pace: ReceiverPace | None = None,
    ) -> None:
        self._store = store
        self.integrations = integrations
        self._clock = clock
        self._error_log = error_log
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self._max_age = timedelta(hours=max_age_hours)
        self._batch = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = wake or asyncio.Event()
        self.worker_id = worker_id or new_worker_id()
        self._unfinished: set[uuid.UUID] = set()
        self._on_outcome = on_outcome or (lambda _integration, _outcome: None)
        self._on_dead = on_dead
        self._sheets_lease = timedelta(seconds=min(sheets_lease_seconds, lease_seconds))
        self._sheets_queue: list[DueDelivery] = []
        self._sheets_task: asyncio.Task[None] | None = None
        # outcomes waiting to be written, each with whether it was written (or why not)
        self._outcomes: list[tuple[Transition, asyncio.Future[bool]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._backpressure = backpressure or Backpressure(0)
        self._pace = pace or ReceiverPace()
        self._loop_lag = LoopLag()

    # -- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, grace_seconds: float = 10.0) -> None:
        """Deliver until `stop` is set; then let the current batch finish (up to
        `grace_seconds`) and give back whatever is still unfinished."""
        log.info("worker_started", worker_id=self.worker_id)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        watching = asyncio.create_task(self._loop_lag.watch(stop))
        try:
            while not stop.is_set():
                batch = asyncio.create_task(self._run_once_safely())
                stopping = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({batch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if batch not in done:
                    deadline = loop.time() + grace_seconds
                    await _finish_within(batch, grace_seconds)
                    stopping.cancel()
                    break
                stopping.cancel()
                if batch.result() == 0:
                    await self._idle(stop)
        finally:
            # nothing waits for a worker that has stopped (or failed)
            self._backpressure.release()
            watching.cancel()
        if self._sheets_task is not None:
            left = grace_seconds if deadline is None else max(0.0, deadline - loop.time())
            await _finish_within(self._sheets_task, left)
        await self._give_back()
        log.info("worker_stopped", worker_id=self.worker_id)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Sleep until woken (a commit in this process), stopped, or the poll interval."""
        waiters = {asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())}
        _, pending = await asyncio.wait(
            waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def _run_once_safely(self) -> int:
        # cleared before looking, so a commit that lands meanwhile still wakes the next wait
        self._wake.clear()
        try:
            return await self._run_batch()
        except StoreError as exc:
            log.warning("worker_store_unavailable", error=str(exc))
            self._backpressure.release()  # behind or not, it cannot catch up now
            return 0

    async def _give_back(self) -> None:
        self._sheets_queue.clear()
        if self._recorder is not None:
            # what was sent is recorded before the rest is given back
            await _finish_within(self._recorder, RECORD_GRACE_SECONDS)
        if self._unfinished:
            with contextlib.suppress(StoreError):
                await self._store.deliveries.release(list(self._unfinished), self.worker_id)
            self._unfinished.clear()
        with contextlib.suppress(StoreError):
            await self._store.leases.release(SHEETS_LEASE, self.worker_id)

    # -- one batch ------------------------------------------------------------------

    async def run_once(self) -> int:
        """Lease and deliver one batch of due deliveries, and wait until its sheet rows are
        written too; returns how many were leased. (The loop in `run` does not wait for
        the sheets before leasing the next batch.)"""
        count = await self._run_batch()
        await self.sheets_settled()
        return count

    async def sheets_settled(self) -> None:
        """Wait until this worker's sheet writer has nothing left to write."""
        while self._sheets_task is not None and not self._sheets_task.done():
            await asyncio.shield(self._sheets_task)

    async def _run_batch(self) -> int:
        now = self._clock.now()
        went_dead: list[DueDelivery] = []
        due = await lease_due(
            self._store,
            now,
            self.worker_id,
            now + self._lease,
            self._batch,
            now - self._max_age,
            dead=went_dead,
        )
        # a full batch: more is due than one lease takes, so the order changes that add
        # to it wait (kit.backpressure) until a lease comes back with room to spare;
        # unless some of it goes to a slow receiver, which more CPU would not speed up
        if len(due) >= self._batch and self._pace.more_cpu_would_help(due, time.perf_counter()):
            self._backpressure.hold()
        else:
            self._backpressure.release()
        for lost in went_dead:
            await self._tell(lost, lost.delivery.last_error or LOST_ATTEMPT, dead=True, moved=True)
        if not due:
            return len(went_dead)
        self._unfinished.update(d.delivery.id for d in due)
        sheets = [d for d in due if d.delivery.integration == Integration.SHEETS]
        others = [d for d in due if d.delivery.integration != Integration.SHEETS]
        if sheets:
            await self._queue_sheets(sheets)
        # every send finishes (or fails) before the batch is over, even if one of them
        # could not record its outcome
        outcomes = await asyncio.gather(
            *(self._deliver_one(d) for d in others), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return len(due) + len(went_dead)

    async def _still_ours(self, batch: list[DueDelivery]) -> list[DueDelivery]:
        """Renew the lease from now on before sending: a delivery that waited its turn past
        its lease may have been taken by another worker, and is then not sent here."""
        now = self._clock.now()
        until = now + self._lease
        kept = await self._store.deliveries.renew(
            [d.delivery.id for d in batch], self.worker_id, until
        )
        for due in batch:
            if due.delivery.id not in kept:
                self._unfinished.discard(due.delivery.id)
                log.warning("lease_lost", delivery_id=str(due.delivery.id))
        return [
            replace(d, delivery=replace(d.delivery, lease_until=until))
            for d in batch
            if d.delivery.id in kept
        ]

    def _send_timeout(self) -> float:
        return self._lease.total_seconds() * 0.8

    def _lease_outlasts_a_send(self, due: DueDelivery) -> bool:
        """The lease has more time left than a send may take: nobody else can take the
        delivery before this worker is done with it, so there is nothing to renew."""
        until = due.delivery.lease_until
        return until is not None and (until - self._clock.now()).total_seconds() > (
            self._send_timeout()
        )

    async def _deliver_one(self, due: DueDelivery) -> None:
        # the slot bounds the sends at once; the outcome is recorded after giving it up,
        # together with those of the sends that finished meanwhile
        async with self._slots:
            renewed = [due] if self._lease_outlasts_a_send(due) else await self._still_ours([due])
            if not renewed:
                return
            due = renewed[0]
            started = time.perf_counter()
            error: Exception | None = None
            try:
                await asyncio.wait_for(self._send(due), timeout=self._send_timeout())
            except Exception as exc:
                error = exc
            if self._loop_lag.quiet_since(started):  # on a late loop it says nothing
                ended = time.perf_counter()
                self._pace.record(due.delivery.integration, ended - started, ended)
        if error is not None:
            await self._failed([due], error, started)
        else:
            await self._delivered([due], started)

    async def _send(self, due: DueDelivery) -> None:
        await dispatch.send(self.integrations, due)

    # -- sheets ---------------------------------------------------------------------

    async def _queue_sheets(self, batch: list[DueDelivery]) -> None:
        """Hand sheet deliveries to this worker's writer task (started when idle)."""
        if len(self._sheets_queue) + len(batch) > SHEETS_QUEUE_LIMIT:
            await self._postpone(batch)
            return
        self._sheets_queue.extend(batch)
        if self._sheets_task is None or self._sheets_task.done():
            self._sheets_task = asyncio.create_task(self._write_sheets())

    async def _write_sheets(self) -> None:
        """Write what is queued, a batch at a time, until the queue is empty; after a
        slow batch, wait (`sheets_pause`) so that the next one takes more rows at once."""
        while self._sheets_queue:
            batch, self._sheets_queue = self._sheets_queue, []
            started = time.perf_counter()
            try:
                await self._deliver_sheets(batch)
            except StoreError as exc:
                # the leases run out and the deliveries are taken again
                log.warning("worker_store_unavailable", error=str(exc))
            except Exception:
                log.exception("sheets_batch_failed", worker_id=self.worker_id)
            pause = sheets_pause(time.perf_counter() - started)
            if pause:
                await asyncio.sleep(pause)  # what is queued meanwhile joins the next batch

    async def _deliver_sheets(self, batch: list[DueDelivery]) -> None:
        """One upsert for the whole batch, each order's newest row only, and one batch at a
        time across every worker on the store (a spreadsheet has no conditional writes, so
        two writers at once could add a row twice). If another worker holds the lease, the
        batch is given back at once, due again shortly."""
        now = self._clock.now()
        if not await self._store.leases.acquire(
            SHEETS_LEASE, self.worker_id, now + self._sheets_lease, now
        ):
            await self._postpone(batch)
            return
        try:
            batch = await self._still_ours(batch)
            if batch:
                await self._upsert_sheets(batch)
        finally:
            with contextlib.suppress(StoreError):
                await self._store.leases.release(SHEETS_LEASE, self.worker_id)

    async def _postpone(self, batch: list[DueDelivery]) -> None:
        until = self._clock.now() + timedelta(seconds=SHEETS_RETRY_SECONDS)
        # conditional: a delivery another worker took meanwhile is left alone
        await self._store.deliveries.transition_many(
            [(due.delivery, postponed(due.delivery, until), None) for due in batch]
        )
        for due in batch:
            self._unfinished.discard(due.delivery.id)

    async def _keep_sheets_lease(self) -> None:
        """Renew the sheets lease every third of it; return when it was lost."""
        while True:
            await asyncio.sleep(self._sheets_lease.total_seconds() / 3)
            now = self._clock.now()
            try:
                kept = await self._store.leases.acquire(
                    SHEETS_LEASE, self.worker_id, now + self._sheets_lease, now
                )
            except StoreError as exc:
                log.warning("sheets_lease_not_renewed", error=str(exc))
                continue
            if not kept:
                log.warning("sheets_lease_lost", worker_id=self.worker_id)
                return

    async def _upsert_sheets(self, batch: list[DueDelivery]) -> None:
        started = time.perf_counter()
        write = asyncio.ensure_future(
            asyncio.wait_for(
                dispatch.write_sheet(self.integrations, batch),
                timeout=self._send_timeout(),
            )
        )
        keeper = asyncio.create_task(self._keep_sheets_lease())
        try:
            await asyncio.wait({write, keeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            keeper.cancel()
            if not write.done():
                write.cancel()
            for task in (keeper, write):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if write.cancelled():
            # another worker took the lease over: this write may have been cut short
            await self._failed(batch, SheetsLeaseLost("lost the sheets writer lease"), started)
        elif (exc := write.exception()) is not None:
            await self._failed(batch, exc, started)
        else:
            await self._delivered(batch, started)

    # -- outcomes -------------------------------------------------------------------

    def _elapsed_ms(self, started: float) -> int:
        return int((time.perf_counter() - started) * 1000)

    async def _record(self, changes: list[Transition]) -> list[bool]:
        """Write these outcomes, conditionally, together with those of the other sends
        that finished meanwhile (one store round trip for all of them); returns whether
        each was written. Raises what the store raised: the delivery is then still
        leased here, and sent again once the lease runs out (at least once)."""
        loop = asyncio.get_running_loop()
        waiting = [loop.create_future() for _ in changes]
        self._outcomes.extend(zip(changes, waiting, strict=True))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._write_outcomes())
        return list(await asyncio.gather(*waiting))

    async def _write_outcomes(self) -> None:
        """Write what is waiting, all of it at a time, until nothing waits."""
        while self._outcomes:
            await asyncio.sleep(0)  # the sends finishing in this turn join the batch
            batch, self._outcomes = self._outcomes, []
            try:
                written = await self._store.deliveries.transition_many([c for c, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled: nothing more is written by this task
                left, self._outcomes = batch + self._outcomes, []
                for _, future in left:
                    if not future.done():
                        future.set_exception(StoreError("stopped before recording the outcome"))
                raise
            for (_, future), ok in zip(batch, written, strict=True):
                if not future.done():
                    future.set_result(ok)

    async def _delivered(self, batch: list[DueDelivery], started: float) -> None:
        duration = self._elapsed_ms(started)
        now = self._clock.now()
        changes: list[Transition] = []
        for due in batch:
            after = delivered(due.delivery, now)
            changes.append((due.delivery, after, attempt_of(after, now, duration)))
        await self._record(changes)
        for due in batch:
            self._unfinished.discard(due.delivery.id)
            self._on_outcome(due.delivery.integration.value, "delivered")

    async def _failed(self, batch: list[DueDelivery], exc: BaseException, started: float) -> None:
        duration = self._elapsed_ms(started)
        now = self._clock.now()
        error = _describe(exc)
        changes: list[Transition] = []
        for due in batch:
            delivery = due.delivery
            retry_at: datetime | None = None
            if not isinstance(exc, PermanentDeliveryError):
                retry_after = exc.retry_after if isinstance(exc, TransientDeliveryError) else None
                candidate = next_attempt(delivery.attempts + 1, now, retry_after)
                if candidate - delivery.event_at <= self._max_age:
                    retry_at = candidate
            after = failed(delivery, error, retry_at)
            changes.append((delivery, after, attempt_of(after, now, duration)))
        written = await self._record(changes)
        for due, (_, after, _), moved in zip(batch, changes, written, strict=True):
            self._unfinished.discard(due.delivery.id)
            await self._tell(due, error, dead=after.status == DeliveryStatus.DEAD, moved=moved)

    async def _tell(self, due: DueDelivery, error: str, *, dead: bool, moved: bool) -> None:
        """Count a failed attempt, keep it in the error log, and tell operators (an alert)
        of a death this worker wrote: a send that failed for good, or a delivery whose
        workers kept getting lost (dead on takeover, `delivery.model.claimed`)."""
        delivery = due.delivery
        if dead and moved and self._on_dead is not None:
            await self._tell_dead(due, error)
        self._on_outcome(delivery.integration.value, "dead" if dead else "failed")
        verb = "gave up (dead)" if dead else "will retry"
        await self._error_log.record(
            delivery.integration,
            f"Failed to deliver {due.event.type.value} to {delivery.integration.value}; {verb}",
            error=error,
            order_id=delivery.order_id,
            level="error" if dead else "warning",
        )

    async def _tell_dead(self, due: DueDelivery, error: str) -> None:
        """Tell operators (an alert); a failure to do so never stops the worker."""
        assert self._on_dead is not None
        try:
            await self._on_dead(due, error)
        except Exception:
            log.exception("dead_delivery_not_told", delivery_id=str(due.delivery.id))


class SheetsLeaseLost(TransientDeliveryError):
    pass


async def _finish_within(task: asyncio.Task[None] | asyncio.Task[int], seconds: float) -> None:
    """Let `task` finish within `seconds`, else cancel it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _describe(exc: BaseException) -> str:
    """The delivery's `lastError`: the receiver's own words, or what failed in words."""
    if isinstance(exc, TransientDeliveryError | PermanentDeliveryError):
        return str(exc) or "the receiver refused it"
    if not isinstance(exc, TimeoutError):
        log.warning("delivery_error", error_type=type(exc).__name__, error=str(exc))
    return in_words(exc)
