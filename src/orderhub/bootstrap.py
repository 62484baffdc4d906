"""The one place where settings become concrete adapters, wired together."""

from __future__ import annotations

from dataclasses import dataclass, field

from orderhub.auth.keys import ApiKeyService
from orderhub.auth.service import Authenticator
from orderhub.idempotency.service import IdempotencyService
from orderhub.kit.clock import Clock, SystemClock
from orderhub.kit.cursor import CursorCodec
from orderhub.monitoring.errors import ErrorRecorder
from orderhub.orders.service import OrderService
from orderhub.payments.provider import PaymentProvider
from orderhub.payments.sandbox import SandboxPaymentProvider
from orderhub.payments.service import PaymentService
from orderhub.payments.stripe import StripePaymentProvider
from orderhub.payments.webhooks import WebhookService
from orderhub.ratelimit.limiter import RateLimiter
from orderhub.settings import Settings, SettingsError
from orderhub.store.protocol import Store
from orderhub.store.sql.store import SqlStore


def open_store(settings: Settings) -> Store:
    if settings.database_url.startswith(("sqlite:///", "postgresql://")):
        return SqlStore(settings.database_url)
    raise SettingsError("DATABASE_URL: the dynamodb store is not available in this version")


def make_payment_provider(settings: Settings, clock: Clock) -> PaymentProvider:
    if settings.provider_name == "sandbox":
        return SandboxPaymentProvider(clock)
    return StripePaymentProvider(
        settings.stripe_secret_key, settings.stripe_api_base, settings.stripe_timeout_seconds
    )


def migrate(settings: Settings) -> None:
    """Create or upgrade the configured store's schema (idempotent)."""
    if settings.database_url.startswith(("sqlite:///", "postgresql://")):
        from orderhub.store.sql.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
        return
    raise SettingsError("DATABASE_URL: the dynamodb store is not available in this version")


@dataclass
class Container:
    settings: Settings
    clock: Clock
    store: Store
    payments: PaymentProvider
    authenticator: Authenticator
    api_keys: ApiKeyService
    limiter: RateLimiter
    idempotency: IdempotencyService
    errors: ErrorRecorder
    payment_service: PaymentService
    webhooks: WebhookService
    orders: OrderService = field(init=False)
    _started: bool = field(default=False, init=False)

    async def start(self) -> None:
        """Things that need the event loop: secrets from the store, Redis."""
        if self._started:
            return
        cursors = CursorCodec(await self.store.server_secret("pagination"))
        await self.store.idempotency.purge_expired(self.clock.now())
        self.orders = OrderService(
            self.store, self.payments, self.payment_service, self.clock, cursors, self.errors
        )
        self._started = True

    async def close(self) -> None:
        await self.store.close()
        self._started = False


def build_container(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    payments: PaymentProvider | None = None,
) -> Container:
    clock = clock or SystemClock()
    store = store or open_store(settings)
    authenticator = Authenticator(settings, store, clock)
    payments = payments or make_payment_provider(settings, clock)
    errors = ErrorRecorder(store, clock)
    payment_service = PaymentService(store, payments, clock, errors)
    return Container(
        settings=settings,
        clock=clock,
        store=store,
        payments=payments,
        errors=errors,
        payment_service=payment_service,
        webhooks=WebhookService(store, payment_service, clock, errors),
        authenticator=authenticator,
        api_keys=ApiKeyService(store, clock),
        limiter=RateLimiter(settings),
        idempotency=IdempotencyService(store.idempotency, clock, settings.idempotency_ttl_hours),
    )
