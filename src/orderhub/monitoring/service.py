"""What operators see (SPEC §11), every figure from stored or measured data."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from orderhub.delivery.model import Integration
from orderhub.kit.clock import Clock, iso_ms
from orderhub.kit.errors import ValidationFailed
from orderhub.kit.money import json_number
from orderhub.monitoring.figures import call_counts, order_buckets
from orderhub.monitoring.health import (
    AWS_BACKENDS,
    HealthChecker,
    HealthReport,
    Role,
    probe_results,
)
from orderhub.settings import Settings
from orderhub.store.protocol import ErrorEntry, Store, StoreError

log = structlog.get_logger(__name__)

MAX_RANGE = timedelta(days=90)
UPTIME_WINDOW = timedelta(hours=24)
RECENT_DELIVERIES = timedelta(minutes=15)
ERRORS_PERIOD = timedelta(hours=24)
ERRORS_KEPT = timedelta(days=7)
PROBES_KEPT = timedelta(days=2)
_RANGE = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

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
ROLE_OF_INTEGRATION = {
    Integration.EMAIL: Role.EMAIL,
    Integration.SHEETS: Role.SHEETS,
    Integration.NOTIFICATIONS: Role.NOTIFICATIONS,
}


def parse_time_range(value: str) -> timedelta:
    match = _RANGE.fullmatch(value)
    if match is None:
        raise ValidationFailed.one("timeRange", "must look like 30m, 24h or 7d")
    span = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if span > MAX_RANGE:
        raise ValidationFailed.one("timeRange", "must be at most 90 days")
    return span


@dataclass(frozen=True, slots=True)
class ErrorsPage:
    errors: list[ErrorEntry]
    period: str


class MonitoringService:
    def __init__(
        self, settings: Settings, store: Store, checker: HealthChecker, clock: Clock
    ) -> None:
        self._settings = settings
        self._store = store
        self._checker = checker
        self._clock = clock

    # -- health -------------------------------------------------------------------------

    async def health(self) -> HealthReport:
        return await self._checker.check()

    async def probe_and_record(self) -> HealthReport:
        report = await self._checker.check()
        await self._store.monitoring.record_probes(probe_results(report))
        now = self._clock.now()
        await self._store.monitoring.prune(now - PROBES_KEPT, now - ERRORS_KEPT)
        return report

    async def run_probes(self, stop: asyncio.Event, interval: float) -> None:
        """The worker's probe loop: probe every backend each `interval` seconds."""
        while not stop.is_set():
            try:
                await self.probe_and_record()
            except StoreError as exc:
                log.warning("probe_not_recorded", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def run_compaction(self, stop: asyncio.Event, interval: float) -> None:
        """The worker's pass folding the store's counter journal (where it keeps one)."""
        while not stop.is_set():
            try:
                await self._store.monitoring.compact(self._clock.now())
            except StoreError as exc:
                log.warning("compaction_skipped", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    # -- integrations -------------------------------------------------------------------

    async def integrations(self) -> dict[str, Any]:
        now = self._clock.now()
        summaries = {
            s.name: s for s in await self._store.monitoring.probe_summaries(now - UPTIME_WINDOW)
        }
        recent = await call_counts(self._store, now - RECENT_DELIVERIES, now)
        names = self._checker.names
        failing_roles = {
            ROLE_OF_INTEGRATION[Integration(name)]
            for name, counts in recent.items()
            if name in Integration._value2member_map_ and counts.errors > 0
        }
        if recent.get(names[Role.PAYMENTS]) and recent[names[Role.PAYMENTS]].errors > 0:
            failing_roles.add(Role.PAYMENTS)

        def entry(role: Role, name: str) -> dict[str, Any]:
            summary = summaries.get(name)
            if summary is not None and not summary.last_ok:
                status = "down"  # the last probe failed
            elif role in failing_roles:
                status = "degraded"  # it answers probes, but recent deliveries/calls fail
            else:
                status = "operational"
            return {
                "name": DISPLAY_NAMES.get(name, name),
                "status": status,
                "lastChecked": iso_ms(summary.last_at) if summary else None,
                "uptime": (
                    f"{summary.successes * 100 / summary.checks:.1f}%" if summary else "n/a"
                ),
            }

        result: dict[str, Any] = {}
        aws: dict[str, str] = {}
        for role, name in names.items():
            item = entry(role, name)
            if name in AWS_BACKENDS:
                aws[name] = item["status"]
                continue
            result[name] = item
        for role in (Role.EMAIL, Role.SHEETS, Role.NOTIFICATIONS):
            if role not in names:
                result[role.value] = {
                    "name": role.value,
                    "status": "not_configured",
                    "lastChecked": None,
                    "uptime": "n/a",
                }
        if aws:
            statuses = set(aws.values())
            overall = (
                "down"
                if "down" in statuses
                else ("degraded" if "degraded" in statuses else "operational")
            )
            checked = [summaries[n].last_at for n in aws if n in summaries]
            result["aws"] = {
                "name": "AWS Services",
                "status": overall,
                "lastChecked": iso_ms(max(checked)) if checked else None,
                "services": aws,
            }
        return {"timestamp": iso_ms(now), "integrations": result}

    # -- metrics ------------------------------------------------------------------------

    async def metrics(self, time_range: str) -> dict[str, Any]:
        span = parse_time_range(time_range)
        end = self._clock.now()
        start = end - span
        buckets = await order_buckets(self._store, start, end)
        calls = await call_counts(self._store, start, end)
        revenue = buckets.revenue_minor
        reporting = self._settings.reporting_currency
        names = self._checker.names
        integrations: dict[str, dict[str, int]] = {}
        payments = names[Role.PAYMENTS]
        counts = calls.get(payments)
        integrations[payments] = {
            "calls": counts.calls if counts else 0,
            "errors": counts.errors if counts else 0,
        }
        for integration, role in ROLE_OF_INTEGRATION.items():
            if role in names:
                counts = calls.get(integration.value)
                integrations[names[role]] = {
                    "calls": counts.calls if counts else 0,
                    "errors": counts.errors if counts else 0,
                }
        return {
            "timeRange": {"start": iso_ms(start), "end": iso_ms(end)},
            "orders": {
                "total": buckets.successful + buckets.failed + buckets.pending + buckets.cancelled,
                "successful": buckets.successful,
                "failed": buckets.failed,
                "pending": buckets.pending,
                "cancelled": buckets.cancelled,
            },
            "revenue": {
                "total": json_number(revenue.get(reporting, 0), reporting),
                "currency": reporting,
                "byCurrency": {
                    currency: json_number(minor, currency)
                    for currency, minor in sorted(revenue.items())
                },
            },
            "integrations": integrations,
        }

    # -- errors -------------------------------------------------------------------------

    async def errors(self, limit: int) -> ErrorsPage:
        since = self._clock.now() - ERRORS_PERIOD
        return ErrorsPage(await self._store.errors.recent(limit, since), "24h")
