"""Health probes (SPEC §11): one per configured backend, concurrent, 2 s each, measured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from orderhub.delivery.model import Integration
from orderhub.delivery.registry import Integrations
from orderhub.kit.clock import Clock
from orderhub.kit.failures import in_words
from orderhub.payments.provider import PaymentProvider
from orderhub.ratelimit.limiter import RateLimiter
from orderhub.settings import Settings
from orderhub.store.protocol import ProbeResult, Store, StoreError

PROBE_TIMEOUT_SECONDS = 2.0


class Backend(StrEnum):
    """The backends probed beside the integrations."""

    STORE = "store"
    PAYMENTS = "payments"
    REDIS = "redis"


Role = Backend | Integration  # what a probed backend is for

CRITICAL = frozenset({Backend.STORE, Backend.PAYMENTS})
AWS_BACKENDS = frozenset({"dynamodb", "sns"})


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # the health key, e.g. "postgres", "stripe", "smtp", "googleSheets"
    role: Role
    probe: Callable[[], Awaitable[Any]] | None  # None: configured, nothing to call


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    role: Role
    status: str  # up, down, configured
    latency_ms: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class HealthReport:
    timestamp: datetime
    status: str  # healthy, degraded, unhealthy
    results: list[CheckResult]


def backend_names(settings: Settings) -> dict[Role, str]:
    """The health key of each configured backend (SPEC §11)."""
    store = settings.database_url.split(":", 1)[0]
    names: dict[Role, str] = {
        Backend.STORE: {"postgresql": "postgres", "dynamodb": "dynamodb"}.get(store, "sqlite"),
        Backend.PAYMENTS: settings.provider_name,
    }
    email = {"smtp": "smtp", "sendgrid": "sendgrid", "file": "emailFile"}
    if settings.email_backend in email:
        names[Integration.EMAIL] = email[settings.email_backend]
    sheets = {"google": "googleSheets", "csv": "csv"}
    if settings.sheets_backend in sheets:
        names[Integration.SHEETS] = sheets[settings.sheets_backend]
    notify = {"sns": "sns", "webhook": "webhook", "file": "notificationsFile"}
    if settings.notify_backend in notify:
        names[Integration.NOTIFICATIONS] = notify[settings.notify_backend]
    if settings.redis_url:
        names[Backend.REDIS] = "redis"
    return names


# Backends whose health the seed reports as "configured": a call would spend quota.
CONFIGURED_ONLY = frozenset({"sendgrid", "googleSheets", "webhook"})


class HealthChecker:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        payments: PaymentProvider,
        integrations: Integrations,
        limiter: RateLimiter,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self.names = backend_names(settings)
        checks: list[Check] = [
            Check(self.names[Backend.STORE], Backend.STORE, store.ping),
            Check(self.names[Backend.PAYMENTS], Backend.PAYMENTS, payments.probe),
        ]
        for integration, sender in integrations.senders().items():
            if integration in self.names and sender is not None:
                name = self.names[integration]
                probe = None if name in CONFIGURED_ONLY else getattr(sender, "probe", None)
                checks.append(Check(name, integration, probe))
        if Backend.REDIS in self.names:
            checks.append(Check("redis", Backend.REDIS, self._redis(limiter)))
        self.checks = checks

    @staticmethod
    def _redis(limiter: RateLimiter) -> Callable[[], Awaitable[None]]:
        async def ping() -> None:
            if not await limiter.ping():
                raise ConnectionError("redis did not answer")

        return ping

    async def check(self) -> HealthReport:
        results = await asyncio.gather(*(self._run(check) for check in self.checks))
        down = {r.role for r in results if r.status == "down"}
        if down & CRITICAL:
            status = "unhealthy"
        elif down:
            status = "degraded"
        else:
            status = "healthy"
        return HealthReport(self._clock.now(), status, list(results))

    async def _run(self, check: Check) -> CheckResult:
        if check.probe is None:
            return CheckResult(check.name, check.role, "configured", None, None)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check.probe(), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure of a probe means "down", with its reason
            error = _probe_error(exc)
            latency = int((time.perf_counter() - started) * 1000)
            return CheckResult(check.name, check.role, "down", latency, error or in_words(exc))
        latency = int((time.perf_counter() - started) * 1000)
        return CheckResult(check.name, check.role, "up", latency, None)


def probe_results(report: HealthReport) -> list[ProbeResult]:
    """What the worker keeps of a check (configured-only backends have nothing to keep)."""
    return [
        ProbeResult(r.name, report.timestamp, r.status == "up", r.latency_ms, r.error)
        for r in report.results
        if r.status != "configured"
    ]


def _probe_error(exc: Exception) -> str:
    """A failed probe's reason: the backend's own words, or what failed in words."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, StoreError):
        # the store's own sentence (what failed, in words); the driver's error is logged
        return str(exc).removeprefix("store error: ") or "the store did not answer"
    if type(exc).__module__ == "builtins" and not isinstance(exc, OSError):
        return in_words(exc)
    return str(exc)[:300]
