"""The one place where settings become concrete adapters, wired together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from orderhub.auth.keys import ApiKeyService, KeyCache
from orderhub.auth.service import Authenticator
from orderhub.console.sessions import ConsoleSessions
from orderhub.delivery.integrations.notify.webhook import WebhookNotifier
from orderhub.delivery.model import DeliveryTargets, delivery_targets
from orderhub.delivery.registry import Integrations, open_client
from orderhub.delivery.resync import ResyncService
from orderhub.delivery.service import DeliveryService
from orderhub.delivery.setup import make_integrations
from orderhub.delivery.worker import DeliveryWorker
from orderhub.idempotency.service import IdempotencyService
from orderhub.kit.backpressure import Backpressure
from orderhub.kit.clock import Clock, SystemClock
from orderhub.kit.cursor import Cursors
from orderhub.monitoring.alerts import AlertService
from orderhub.monitoring.error_log import ErrorLog
from orderhub.monitoring.health import HealthChecker
from orderhub.monitoring.prometheus import Metrics
from orderhub.monitoring.service import MonitoringService
from orderhub.orders.service import OrderService
from orderhub.payments.provider import PaymentProvider, PaymentProviders
from orderhub.payments.reconcile import ReconcileService
from orderhub.payments.recording import RecordingEventFeed, RecordingPaymentProvider
from orderhub.payments.sandbox import SandboxPaymentProvider
from orderhub.payments.service import PaymentService
from orderhub.payments.stripe import StripePaymentProvider
from orderhub.payments.webhook_service import WebhookService
from orderhub.ratelimit.limiter import RateLimiter
from orderhub.sandbox.service import SandboxCheckout
from orderhub.settings import Settings, SettingsError
from orderhub.store.protocol import Store
from orderhub.store.sql.store import SqlStore


def open_store(settings: Settings, targets: DeliveryTargets | None = None) -> Store:
    """The configured store; `targets` routes each order event to the integrations that
    get a delivery for it (the outbox rows written with the event)."""
    if targets is None:
        targets = delivery_targets(make_integrations(settings).enabled())
    if settings.database_url.startswith(("sqlite:///", "postgresql://")):
        return SqlStore(settings.database_url, targets)
    if settings.database_url.startswith("dynamodb://"):
        from orderhub.store.dynamodb.store import DynamoStore

        return DynamoStore(settings.database_url, settings.aws_region, targets)
    raise SettingsError("DATABASE_URL: must start with sqlite:///, postgresql:// or dynamodb://")


def make_payment_provider(settings: Settings, clock: Clock, store: Store) -> PaymentProvider:
    """The configured provider (the one new orders use)."""
    if settings.provider_name == "sandbox":
        return SandboxPaymentProvider(store.sandbox, clock)
    return _stripe(settings)


def _stripe(settings: Settings) -> StripePaymentProvider:
    return StripePaymentProvider(
        settings.stripe_secret_key, settings.stripe_api_base, settings.stripe_timeout_seconds
    )


def make_payment_providers(
    settings: Settings, clock: Clock, store: Store, configured: PaymentProvider | None = None
) -> dict[str, PaymentProvider]:
    """Every provider this process can reach, by name: the configured one, Stripe when
    its key is set, and the in-process sandbox (always available). Orders made with a
    provider that was configured before keep going to it."""
    configured = configured or make_payment_provider(settings, clock, store)
    providers: dict[str, PaymentProvider] = {configured.name: configured}
    if "stripe" not in providers and settings.stripe_secret_key:
        providers["stripe"] = _stripe(settings)
    if "sandbox" not in providers:
        providers["sandbox"] = SandboxPaymentProvider(store.sandbox, clock)
    return providers


def _alert_webhook(settings: Settings) -> WebhookNotifier | None:
    if not settings.alert_webhook_url:
        return None
    try:
        return WebhookNotifier(
            settings.alert_webhook_url, settings.alert_webhook_secret, setting="ALERT_WEBHOOK"
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Migration:
    """What `migrate` did to a store: `before` is None when it had no schema at all."""

    store: str  # in words: "the SQLite store data/orderhub.db", "the PostgreSQL store", ...
    before: str | None
    after: str  # the schema revision; "" for DynamoDB (its table has none)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        revision = f" (revision {self.after})" if self.after else ""
        if self.before is None:
            return f"created the schema of {self.store}{revision}"
        if self.before == self.after:
            return f"{self.store} is already up to date{revision}"
        return f"upgraded {self.store} from revision {self.before} to {self.after}"


def _store_in_words(settings: Settings) -> str:
    if settings.sqlite_path is not None:
        return f"the SQLite store {settings.sqlite_path}"
    if settings.database_url.startswith("postgresql://"):
        return "the PostgreSQL store"  # never the URL: it may hold a password
    from orderhub.store.dynamodb.tables import table_name

    return f"the DynamoDB table {table_name(settings.database_url)}"


def migrate(settings: Settings) -> Migration:
    """Create or upgrade the configured store's schema (idempotent); says what it did."""
    store = _store_in_words(settings)
    if settings.database_url.startswith(("sqlite:///", "postgresql://")):
        from orderhub.store.sql.migrate import upgrade_to_head

        before, after = upgrade_to_head(settings.database_url)
        return Migration(store, before, after)
    if settings.database_url.startswith("dynamodb://"):
        from orderhub.store.dynamodb.migrate import create_tables, table_exists

        existed = table_exists(settings.database_url, settings.aws_region)
        create_tables(settings.database_url, settings.aws_region)
        return Migration(store, "" if existed else None, "")
    raise SettingsError("DATABASE_URL: must start with sqlite:///, postgresql:// or dynamodb://")


def needs_migration(settings: Settings) -> bool:
    """Whether the store lacks the schema this version needs (`orderhub migrate` fixes
    it). Asked after the store failed, to tell a missing schema from a store that is down."""
    if settings.database_url.startswith(("sqlite:///", "postgresql://")):
        from orderhub.store.sql.migrate import current_revision, head_revision

        return current_revision(settings.database_url) != head_revision()
    if settings.database_url.startswith("dynamodb://"):
        from orderhub.store.dynamodb.migrate import table_exists

        return not table_exists(settings.database_url, settings.aws_region)
    return False


# How often the worker folds the store's counter journal (DynamoDB; nothing to do on SQL).
COMPACT_SECONDS = 5.0


@dataclass
class Container:
    settings: Settings
    clock: Clock
    store: Store
    payments: PaymentProvider  # the provider itself (tests reach the sandbox through it)
    recorded_payments: PaymentProvider  # the same, with every call recorded for monitoring
    other_payments: list[PaymentProvider]  # providers of older orders (closed at the end)
    authenticator: Authenticator
    api_keys: ApiKeyService
    limiter: RateLimiter
    idempotency: IdempotencyService
    error_log: ErrorLog
    cursors: Cursors
    payment_service: PaymentService
    orders: OrderService
    deliveries: DeliveryService
    resync: ResyncService
    webhooks: WebhookService
    reconcile: ReconcileService
    worker: DeliveryWorker
    backpressure: Backpressure  # the worker holds it while behind; order changes wait
    monitoring: MonitoringService
    alerts: AlertService
    metrics: Metrics
    console_sessions: ConsoleSessions
    sandbox: SandboxCheckout | None = None  # the sandbox's client side, with the sandbox only
    closing: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _started: bool = field(default=False, init=False)
    _worker_task: asyncio.Task[None] | None = field(default=None, init=False)
    _worker_stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def start(self, *, with_worker: bool = False) -> None:
        """Things that need the event loop: the store's pagination secret (read now, so a
        store that does not answer stops the start), expired keys, the integrations' and
        payment providers' network clients, the in-process worker."""
        if self._started:
            return
        await self.cursors.codec()
        await self.store.idempotency.purge_expired(self.clock.now())
        # network clients whose first use is slow to set up (models to load, modules to
        # import): built now, not on the event loop of the first request or health probe
        await self.worker.integrations.open()
        for provider in (self.payments, *self.other_payments):
            await open_client(provider)
        if with_worker:
            self._worker_stop.clear()
            self._worker_task = asyncio.create_task(self.run_worker(self._worker_stop))
        self._started = True

    async def run_worker(self, stop: asyncio.Event) -> None:
        """The delivery worker and, beside it, the health probes, the reconciliation (which
        also sends unacknowledged refunds again) and the counters' compaction."""
        side_tasks = [
            asyncio.create_task(
                self.monitoring.run_probes(stop, self.settings.probe_interval_seconds)
            ),
            asyncio.create_task(
                self.reconcile.run_periodically(stop, self.settings.reconcile_interval_seconds)
            ),
            asyncio.create_task(self.monitoring.run_compaction(stop, COMPACT_SECONDS)),
            asyncio.create_task(self.alerts.run(stop)),
        ]
        try:
            await self.worker.run(stop)
        finally:
            stop.set()
            await asyncio.gather(*side_tasks)

    async def close(self) -> None:
        try:
            if self._worker_task is not None:
                self._worker_stop.set()  # finishes or gives back what is in flight
                task, self._worker_task = self._worker_task, None
                await task
        finally:
            await self.worker.integrations.aclose()
            for closing in self.closing:
                await closing()
            for provider in (self.payments, *self.other_payments):
                close_payments = getattr(provider, "aclose", None)
                if close_payments is not None:
                    await close_payments()
            await self.store.close()
            self.metrics.close()
        self._started = False


def build_container(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    payments: PaymentProvider | None = None,
    integrations: Integrations | None = None,
) -> Container:
    clock = clock or SystemClock()
    if integrations is None:
        try:
            integrations = make_integrations(settings)
        except ValueError as exc:  # a backend refused its settings (e.g. a bad SMTP_URL)
            raise SettingsError(str(exc)) from None
    store = store or open_store(settings, delivery_targets(integrations.enabled()))
    key_cache = KeyCache()
    authenticator = Authenticator(settings, store, clock, key_cache)
    payments = payments or make_payment_provider(settings, clock, store)
    by_name = make_payment_providers(settings, clock, store, payments)
    recorded_by_name: dict[str, PaymentProvider] = {
        name: RecordingPaymentProvider(provider, store.monitoring, clock)
        for name, provider in by_name.items()
    }
    recorded = recorded_by_name[payments.name]
    metrics = Metrics(settings.prometheus_multiproc_dir)
    limiter = RateLimiter(settings, on_failure=metrics.observe_limiter_failure)
    error_log = ErrorLog(store, clock)
    cursors = Cursors(lambda: store.server_secret("pagination"))
    payment_service = PaymentService(
        store, PaymentProviders(recorded, recorded_by_name), clock, error_log
    )
    webhooks = WebhookService(
        store, payment_service, clock, error_log, settings.stripe_webhook_secret
    )
    feeds = {
        name: RecordingEventFeed(p, store.monitoring, clock)
        for name, p in by_name.items()
        if isinstance(p, StripePaymentProvider)
    }
    alert_webhook = _alert_webhook(settings)
    alerts = AlertService(
        store,
        clock,
        email=integrations.email,
        email_from=settings.email_from,
        email_to=settings.alert_email,
        webhook=alert_webhook,
        shop_name=settings.shop_name,
        max_age=timedelta(hours=settings.delivery_max_age_hours),
    )
    # held by the worker of this process while it is behind; order changes wait on it
    backpressure = Backpressure(settings.outbox_backpressure_seconds)
    sandbox = (
        SandboxCheckout(payments, store, payment_service, settings.shop_name)
        if isinstance(payments, SandboxPaymentProvider)
        else None
    )
    return Container(
        settings=settings,
        clock=clock,
        store=store,
        payments=payments,
        recorded_payments=recorded,
        other_payments=[p for name, p in by_name.items() if name != payments.name],
        error_log=error_log,
        cursors=cursors,
        payment_service=payment_service,
        orders=OrderService(
            store, recorded, payment_service, clock, cursors, error_log, backpressure
        ),
        deliveries=DeliveryService(store, clock, cursors),
        resync=ResyncService(store, clock, integrations.enabled()),
        webhooks=webhooks,
        reconcile=ReconcileService(store, payment_service, webhooks, feeds, clock, error_log),
        monitoring=MonitoringService(
            settings,
            store,
            HealthChecker(settings, store, payments, integrations, limiter, clock),
            clock,
            alerts,
        ),
        alerts=alerts,
        closing=[alert_webhook.aclose] if alert_webhook is not None else [],
        metrics=metrics,
        console_sessions=ConsoleSessions(
            store, authenticator, limiter, settings.trusted_proxies, clock
        ),
        sandbox=sandbox,
        worker=DeliveryWorker(
            store,
            integrations,
            clock,
            error_log,
            lease_seconds=settings.worker_lease_seconds,
            poll_seconds=settings.worker_poll_seconds,
            max_age_hours=settings.delivery_max_age_hours,
            wake=store.outbox_signal,
            on_outcome=metrics.observe_delivery,
            on_dead=alerts.delivery_dead,
            backpressure=backpressure,
        ),
        backpressure=backpressure,
        authenticator=authenticator,
        api_keys=ApiKeyService(store, clock, key_cache),
        limiter=limiter,
        idempotency=IdempotencyService(store.idempotency, clock, settings.idempotency_ttl_hours),
    )
