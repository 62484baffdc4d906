"""Reconciliation: heal what missed webhooks and unreachable providers left behind.

One run, under the store lease `reconcile` (one at a time across every process):

1. orders whose payment is not final (status `pending`) and whose intent is older than
   five minutes: the intent is read from the order's provider and what it says applied;
2. with a provider that lists its events (Stripe's `GET /v1/events`): the events of the
   handled types since the last checkpoint (minus a few minutes of overlap, 30 days at
   most), oldest first, each through the webhook's own path (`WebhookService.handle`),
   so an event never delivered heals and one already handled is a duplicate that
   changes nothing — and a webhook delivery that comes later is a duplicate too;
3. refunds still `requested` (the provider never answered) are sent again.

Each run is recorded (start, end, checked, changed, errors), kept 30 days; failures also
go to the error log.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from orderhub.kit.clock import Clock
from orderhub.kit.errors import AppError, Conflict
from orderhub.kit.ids import new_id
from orderhub.kit.periodic import run_every
from orderhub.monitoring.error_log import Component, ErrorLog
from orderhub.orders.domain import EventSource, Order, OrderStatus, PaymentStatus
from orderhub.payments.outcomes import OutcomeRejected, PaymentResult, intent_outcome
from orderhub.payments.provider import EventFeed, IntentStatus, ProviderError
from orderhub.payments.service import PaymentService
from orderhub.payments.stripe_events import INTENT_RESULTS, REFUND_EVENTS
from orderhub.payments.webhook_service import WebhookService
from orderhub.store.protocol import OrderFilter, ReconcileRun, Store, StoreError

log = structlog.get_logger(__name__)

LEASE = "reconcile"
LEASE_FOR = timedelta(minutes=15)  # longer than any run; a crashed run's lease runs out
SETTLED_AFTER = timedelta(minutes=5)  # an intent younger than this may still be in flight
EVENTS_KEPT = timedelta(days=30)  # how far back Stripe lists events
EVENT_OVERLAP = timedelta(minutes=5)  # events are listed from this long before the checkpoint
ORDERS_WINDOW = timedelta(days=30)  # pending orders created this long ago are still read
RUNS_KEPT = timedelta(days=30)
REFUND_QUIET = timedelta(minutes=2)  # a refund left alone this long is sent again
REFUNDS_PER_RUN = 100
ORDERS_PAGE = 100
CONCURRENT_READS = 8
HANDLED_TYPES = (*INTENT_RESULTS, *REFUND_EVENTS)
MAX_ERROR_TEXT = 2000


class ReconcileBusy(Conflict):
    """Another process holds the reconciliation lease."""

    code = "reconcile_running"


@dataclass
class Tally:
    """What a run checked and changed, and what went wrong."""

    checked: int = 0
    changed: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors.append(text)


class ReconcileService:
    def __init__(
        self,
        store: Store,
        payments: PaymentService,
        webhooks: WebhookService,
        feeds: Mapping[str, EventFeed],
        clock: Clock,
        error_log: ErrorLog,
    ) -> None:
        self._store = store
        self._payments = payments
        self._webhooks = webhooks
        self._feeds = dict(feeds)
        self._clock = clock
        self._error_log = error_log
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{new_id()}"

    async def last_run(self) -> ReconcileRun | None:
        return await self._store.reconcile_runs.latest()

    async def recent_runs(self, limit: int = 50) -> list[ReconcileRun]:
        return await self._store.reconcile_runs.recent(self._clock.now() - RUNS_KEPT, limit)

    async def run(self, since: timedelta | None = None) -> ReconcileRun:
        """One run now (ReconcileBusy when another is running). `since`: look back that
        far for orders and events instead of the defaults (events: 30 days at most)."""
        started = self._clock.now()
        leases = self._store.leases
        if not await leases.acquire(LEASE, self._owner, started + LEASE_FOR, started):
            raise ReconcileBusy("A reconciliation is already running; try again later")
        try:
            return await self._run(started, since)
        finally:
            await leases.release(LEASE, self._owner)

    async def run_if_due(self, interval: timedelta) -> ReconcileRun | None:
        """A run unless one started less than `interval` ago (in any process) or one is
        running: the periodic pass, so that several workers run it once per interval."""
        latest = await self._store.reconcile_runs.latest()
        if latest is not None and self._clock.now() - latest.started_at < interval * 0.9:
            return None
        try:
            return await self.run()
        except ReconcileBusy:
            return None

    async def run_periodically(self, stop: asyncio.Event, interval: float) -> None:
        """The worker's pass, every `interval` seconds (0: never)."""
        if interval <= 0:
            return

        async def step() -> ReconcileRun | None:
            return await self.run_if_due(timedelta(seconds=interval))

        await run_every(
            stop, interval, step, name="reconcile", skip_on=(StoreError,), wait_first=True
        )

    # -- one run ------------------------------------------------------------------------

    async def _run(self, started: datetime, since: timedelta | None) -> ReconcileRun:
        tally = Tally()
        previous = await self._store.reconcile_runs.latest()
        await self._orders(tally, started, since)
        checkpoint = await self._events(
            tally, started, since, previous.checkpoint if previous else None
        )
        sent, acknowledged = await self._payments.resend_refunds(REFUND_QUIET, REFUNDS_PER_RUN)
        tally.checked += sent
        tally.changed += acknowledged
        if sent > acknowledged:
            tally.error(f"{sent - acknowledged} refund(s) could not be sent again")
        run = ReconcileRun(
            id=new_id(),
            started_at=started,
            finished_at=self._clock.now(),
            checked=tally.checked,
            changed=tally.changed,
            errors=len(tally.errors),
            error="; ".join(tally.errors)[:MAX_ERROR_TEXT] if tally.errors else None,
            checkpoint=checkpoint,
        )
        await self._store.reconcile_runs.record(run)
        await self._store.reconcile_runs.prune(started - RUNS_KEPT)
        log.info(
            "reconciled",
            checked=run.checked,
            changed=run.changed,
            errors=run.errors,
            seconds=(run.finished_at - started).total_seconds(),
        )
        return run

    # (1) orders whose payment is not final ----------------------------------------------

    async def _orders(self, tally: Tally, now: datetime, since: timedelta | None) -> None:
        oldest = now - (since or ORDERS_WINDOW)
        settled = now - SETTLED_AFTER
        limit = asyncio.Semaphore(CONCURRENT_READS)

        async def check(order: Order) -> None:
            async with limit:
                await self._check_order(order, tally)

        before = None
        while True:
            async with self._store.unit_of_work() as uow:
                page = await uow.orders.list_page(
                    OrderFilter(status=OrderStatus.PENDING), before, ORDERS_PAGE
                )
            due = [o for o in page if o.payment_intent_id and oldest <= o.created_at <= settled]
            await asyncio.gather(*(check(order) for order in due))
            if len(page) < ORDERS_PAGE or page[-1].created_at < oldest:
                return
            before = page[-1].id

    async def _check_order(self, order: Order, tally: Tally) -> None:
        assert order.payment_intent_id is not None
        tally.checked += 1
        try:
            intent = await self._payments.get_intent(order.payment_intent_id)
        except AppError as exc:
            tally.error(f"order {order.id}: {exc.message}")
            await self._error_log.record(
                Component.PAYMENTS,
                "Reconciliation could not read the payment from the provider",
                error=exc.message,
                order_id=order.id,
            )
            return
        # A failed attempt leaves the intent waiting for a payment method with the error.
        failed = (
            intent.status == IntentStatus.REQUIRES_PAYMENT_METHOD
            and intent.last_payment_error is not None
        )
        outcome = intent_outcome(intent, failed=failed)
        if (
            outcome.result == PaymentResult.IN_PROGRESS
            and order.payment_status != PaymentStatus.FAILED
        ):
            return  # nothing final to apply
        try:
            updated = await self._payments.apply(outcome, EventSource.PROVIDER)
        except (OutcomeRejected, AppError) as exc:
            text = exc.message if isinstance(exc, AppError) else str(exc)
            tally.error(f"order {order.id}: {text}")
            await self._error_log.record(
                Component.PAYMENTS,
                "Reconciliation could not apply what the provider reports",
                error=text,
                order_id=order.id,
            )
            return
        if updated.version > order.version:
            tally.changed += 1

    # (2) the provider's events ----------------------------------------------------------

    async def _events(
        self,
        tally: Tally,
        now: datetime,
        since: timedelta | None,
        checkpoint: datetime | None,
    ) -> datetime | None:
        """Every feed's events since the checkpoint, applied oldest first. Returns the new
        checkpoint: the newest event seen, unless something failed (then the old one, so
        the next run sees those events again)."""
        if not self._feeds:
            return checkpoint
        floor = now - EVENTS_KEPT
        if since is not None:
            start = max(now - since, floor)
        elif checkpoint is not None:
            start = max(checkpoint - EVENT_OVERLAP, floor)
        else:
            start = floor
        newest = checkpoint
        complete = True
        for feed in self._feeds.values():
            try:
                events = await self._list(feed, int(start.timestamp()))
            except ProviderError as exc:
                complete = False
                tally.error(f"events of {feed.name}: {exc}")
                await self._error_log.record(
                    Component.PAYMENTS,
                    f"Reconciliation could not list the events of {feed.name}",
                    error=str(exc),
                )
                continue
            for event in events:
                tally.checked += 1
                if not await self._apply_event(event, tally):
                    complete = False
                created = datetime.fromtimestamp(int(event["created"]), tz=UTC)
                newest = created if newest is None else max(newest, created)
        return newest if complete else checkpoint

    async def _list(self, feed: EventFeed, created_gte: int) -> list[dict[str, Any]]:
        """Every page of the feed's handled events since `created_gte`, oldest first."""
        events: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = await feed.list_events(
                types=HANDLED_TYPES, created_gte=created_gte, starting_after=after
            )
            events.extend(page.events)
            if not page.has_more or not page.events:
                break
            after = page.events[-1]["id"]
        events.reverse()  # listed newest first; applied in the order they happened
        return events

    async def _apply_event(self, event: dict[str, Any], tally: Tally) -> bool:
        """Through the webhook's own path; False when it could not be applied now."""
        try:
            result = await self._webhooks.apply_event(event)
        except AppError as exc:
            tally.error(f"event {event.get('id')}: {exc.message}")
            await self._error_log.record(
                Component.WEBHOOKS,
                f"Reconciliation could not apply Stripe event {event.get('id')}",
                error=exc.message,
            )
            return False
        tally.changed += result.changed
        if result.outcome == "rejected":
            tally.error(f"event {event.get('id')} was rejected")  # its reason is in the log
        return True
