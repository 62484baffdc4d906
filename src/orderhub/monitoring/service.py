"""What operators see (SPEC §11), every figure from stored or measured data."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from orderhub.delivery.model import Integration
from orderhub.kit.clock import Clock, epoch_ms, from_epoch_ms
from orderhub.kit.durations import parse_duration
from orderhub.kit.errors import ValidationFailed
from orderhub.kit.periodic import run_every
from orderhub.monitoring.alerts import AlertService
from orderhub.monitoring.figures import (
    call_counts,
    order_buckets,
    outbox_backlog,
    series_figures,
)
from orderhub.monitoring.health import (
    AWS_BACKENDS,
    Backend,
    HealthChecker,
    HealthReport,
    Role,
    probe_results,
)
from orderhub.monitoring.rollups import CallCounts, OrderBuckets
from orderhub.settings import Settings
from orderhub.store.protocol import ErrorEntry, Store, StoreError

log = structlog.get_logger(__name__)

MAX_RANGE = timedelta(days=90)
UPTIME_WINDOW = timedelta(hours=24)
RECENT_DELIVERIES = timedelta(minutes=15)
ERRORS_PERIOD = timedelta(hours=24)
ERRORS_KEPT = timedelta(days=7)
PROBES_KEPT = timedelta(days=2)
# The steps of a series (SPEC §11): each point one step of the range, aligned to whole steps
# of UTC time, so hourly and daily points read whole-hour counters.
STEPS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
MAX_POINTS = 500

DISPLAY_NAMES = {
    "stripe": "Stripe Payment Gateway",
    "sandbox": "Sandbox Payments",
    "sendgrid": "SendGrid Email Service",
    "smtp": "SMTP Email",
    "emailFile": "Email Files",
    "googleSheets": "Google Sheets API",
    "csv": "CSV Sheet",
    "sns": "Amazon SNS",
    "webhook": "Notification Webhook",
    "notificationsFile": "Notification File",
    "sqlite": "SQLite Store",
    "postgres": "PostgreSQL Store",
    "dynamodb": "Amazon DynamoDB",
    "redis": "Redis",
}


def parse_time_range(value: str) -> timedelta:
    span = parse_duration(value)
    if span is None:
        raise ValidationFailed.one("timeRange", "must look like 30m, 24h or 7d")
    if span > MAX_RANGE:
        raise ValidationFailed.one("timeRange", "must be at most 90 days")
    return span


def default_step(span: timedelta) -> str:
    """The step a series takes when none is asked for: a few dozen to a few hundred points."""
    if span <= timedelta(hours=6):
        return "5m"
    if span <= timedelta(days=7):
        return "1h"
    return "1d"


def series_bounds(
    start: datetime, end: datetime, step: timedelta
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at every whole step of UTC time: a partial step at each end, whole
    steps between them; together the points cover the range exactly once."""
    unit_ms = step // timedelta(milliseconds=1)
    first = -(-epoch_ms(start) // unit_ms) * unit_ms
    cuts = [start]
    moment = from_epoch_ms(first)
    while moment < end:
        if moment > start:
            cuts.append(moment)
        moment += step
    cuts.append(end)
    return [(lo, hi) for lo, hi in itertools.pairwise(cuts) if lo < hi]


@dataclass(frozen=True, slots=True)
class ErrorsPage:
    errors: list[ErrorEntry]
    period: str


@dataclass(frozen=True, slots=True)
class IntegrationStatus:
    """One entry of `/api/monitoring/integrations`; a group (AWS) has `services` and no
    uptime of its own."""

    name: str  # the display name
    status: str  # operational, degraded, down, not_configured
    last_checked: datetime | None
    uptime: str | None = None
    services: dict[str, str] | None = None
    # the payment provider's entry: when the last reconciliation finished (None: never)
    reconciled: bool = False
    last_reconciled: datetime | None = None


@dataclass(frozen=True, slots=True)
class IntegrationsReport:
    timestamp: datetime
    integrations: dict[str, IntegrationStatus]  # by health key (or integration, or "aws")


@dataclass(frozen=True, slots=True)
class OrderCounts:
    successful: int
    failed: int
    pending: int
    cancelled: int

    @property
    def total(self) -> int:
        return self.successful + self.failed + self.pending + self.cancelled


@dataclass(frozen=True, slots=True)
class MetricsReport:
    start: datetime
    end: datetime
    orders: OrderCounts
    revenue_minor: int  # in the reporting currency
    currency: str  # the reporting currency
    revenue_by_currency: dict[str, int]  # minor units, by currency, sorted
    integrations: dict[str, CallCounts]  # by health key


@dataclass(frozen=True, slots=True)
class SeriesReport:
    start: datetime
    end: datetime
    step: str
    points: list[MetricsReport]  # oldest first, each with its own start and end


class MonitoringService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        checker: HealthChecker,
        clock: Clock,
        alerts: AlertService | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._checker = checker
        self._clock = clock
        self._alerts = alerts

    # -- health -------------------------------------------------------------------------

    async def health(self) -> HealthReport:
        return await self._checker.check()

    async def probe_and_record(self) -> HealthReport:
        report = await self._checker.check()
        now = self._clock.now()
        before = {
            s.name: s.last_ok
            for s in await self._store.monitoring.probe_summaries(now - UPTIME_WINDOW)
        }
        await self._store.monitoring.record_probes(probe_results(report))
        await self._store.monitoring.prune(now - PROBES_KEPT, now - ERRORS_KEPT)
        await self._alert_down(report, before)
        return report

    async def _alert_down(self, report: HealthReport, before: dict[str, bool]) -> None:
        """An alert for each backend whose status became `down` with this check (it was
        up, or never checked); named by its integration, so that an email backend that
        is down and the email deliveries that go dead make one alert, not two."""
        if self._alerts is None:
            return
        roles = {name: role for role, name in self._checker.names.items()}
        for result in report.results:
            if result.status == "down" and before.get(result.name, True):
                role = roles.get(result.name)
                subject = role.value if isinstance(role, Integration) else result.name
                label = DISPLAY_NAMES.get(result.name, result.name)
                await self._alerts.integration_down(subject, label, result.error)

    async def run_probes(self, stop: asyncio.Event, interval: float) -> None:
        """The worker's probe loop: probe every backend each `interval` seconds."""
        await run_every(stop, interval, self.probe_and_record, name="probe", skip_on=(StoreError,))

    async def run_compaction(self, stop: asyncio.Event, interval: float) -> None:
        """The worker's pass folding the store's counter journal (where it keeps one)."""

        async def compact() -> int:
            return await self._store.monitoring.compact(self._clock.now())

        await run_every(stop, interval, compact, name="compaction", skip_on=(StoreError,))

    # -- integrations -------------------------------------------------------------------

    async def integrations(self) -> IntegrationsReport:
        now = self._clock.now()
        summaries = {
            s.name: s for s in await self._store.monitoring.probe_summaries(now - UPTIME_WINDOW)
        }
        recent = await call_counts(self._store, now - RECENT_DELIVERIES, now)
        names = self._checker.names
        failing: set[Role] = {
            integration
            for integration in Integration
            if (counts := recent.get(integration.value)) is not None and counts.errors > 0
        }
        payments = recent.get(names[Backend.PAYMENTS])
        if payments is not None and payments.errors > 0:
            failing.add(Backend.PAYMENTS)

        def entry(role: Role, name: str) -> IntegrationStatus:
            summary = summaries.get(name)
            if summary is not None and not summary.last_ok:
                status = "down"  # the last probe failed
            elif role in failing:
                status = "degraded"  # it answers probes, but recent deliveries/calls fail
            else:
                status = "operational"
            return IntegrationStatus(
                name=DISPLAY_NAMES.get(name, name),
                status=status,
                last_checked=summary.last_at if summary else None,
                uptime=f"{summary.successes * 100 / summary.checks:.1f}%" if summary else "n/a",
            )

        result: dict[str, IntegrationStatus] = {}
        aws: dict[str, str] = {}
        last_run = await self._store.reconcile_runs.latest()
        for role, name in names.items():
            item = entry(role, name)
            if role == Backend.PAYMENTS:
                finished = last_run.finished_at if last_run else None
                item = replace(item, reconciled=True, last_reconciled=finished)
            if name in AWS_BACKENDS:
                aws[name] = item.status
                continue
            result[name] = item
        for integration in Integration:
            if integration not in names:
                result[integration.value] = IntegrationStatus(
                    integration.value, "not_configured", None, "n/a"
                )
        if aws:
            statuses = set(aws.values())
            overall = (
                "down"
                if "down" in statuses
                else ("degraded" if "degraded" in statuses else "operational")
            )
            checked = [summaries[n].last_at for n in aws if n in summaries]
            result["aws"] = IntegrationStatus(
                "AWS Services", overall, max(checked) if checked else None, services=aws
            )
        return IntegrationsReport(now, result)

    # -- metrics ------------------------------------------------------------------------

    async def metrics(self, time_range: str) -> MetricsReport:
        span = parse_time_range(time_range)
        end = self._clock.now()
        return await self._figures(end - span, end)

    async def series(self, time_range: str, step: str | None) -> SeriesReport:
        """The figures of `metrics` step by step over the same range; the points add up to
        what `metrics` says for that range."""
        span = parse_time_range(time_range)
        step = step or default_step(span)
        if step not in STEPS:
            raise ValidationFailed.one("step", "must be one of 5m, 1h, 1d")
        end = self._clock.now()
        start = end - span
        bounds = series_bounds(start, end, STEPS[step])
        if len(bounds) > MAX_POINTS:
            raise ValidationFailed.one(
                "step", f"gives more than {MAX_POINTS} points for timeRange {time_range}"
            )
        figures = await series_figures(
            self._store, bounds, STEPS[step] // timedelta(milliseconds=1)
        )
        points = [
            self._report(lo, hi, buckets, calls)
            for (lo, hi), (buckets, calls) in zip(bounds, figures, strict=True)
        ]
        return SeriesReport(start, end, step, points)

    async def _figures(self, start: datetime, end: datetime) -> MetricsReport:
        buckets = await order_buckets(self._store, start, end)
        calls = await call_counts(self._store, start, end)
        return self._report(start, end, buckets, calls)

    def _report(
        self,
        start: datetime,
        end: datetime,
        buckets: OrderBuckets,
        calls: dict[str, CallCounts],
    ) -> MetricsReport:
        revenue = buckets.revenue_minor
        reporting = self._settings.reporting_currency
        names = self._checker.names
        # the provider first, then each configured integration (counted by its name)
        counted: list[tuple[str, str]] = [(names[Backend.PAYMENTS], names[Backend.PAYMENTS])]
        counted += [(names[i], i.value) for i in Integration if i in names]
        integrations: dict[str, CallCounts] = {}
        for key, recorded_as in counted:
            counts = calls.get(recorded_as)
            integrations[key] = counts or CallCounts(0, 0)
        return MetricsReport(
            start=start,
            end=end,
            orders=OrderCounts(
                buckets.successful, buckets.failed, buckets.pending, buckets.cancelled
            ),
            revenue_minor=revenue.get(reporting, 0),
            currency=reporting,
            revenue_by_currency=dict(sorted(revenue.items())),
            integrations=integrations,
        )

    async def backlog(self) -> tuple[int, float]:
        """Deliveries waiting (pending or in flight) and the oldest one's age in seconds."""
        return await outbox_backlog(self._store, self._clock.now())

    # -- errors -------------------------------------------------------------------------

    async def errors(self, limit: int) -> ErrorsPage:
        since = self._clock.now() - ERRORS_PERIOD
        return ErrorsPage(await self._store.errors.recent(limit, since), "24h")
