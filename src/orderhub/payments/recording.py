"""Every payment provider call, timed and recorded for monitoring (SPEC §11 metrics)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from orderhub.kit.clock import Clock
from orderhub.kit.ids import new_id
from orderhub.payments.provider import (
    CardDeclined,
    EventFeed,
    EventPage,
    IntentNotFound,
    PaymentIntent,
    PaymentProvider,
    ProviderError,
    ProviderRefund,
    ProviderRejected,
)
from orderhub.store.protocol import MonitoringRepository, ProviderCall, StoreError

T = TypeVar("T")
log = structlog.get_logger(__name__)

# The provider answered: a decline, a refusal or an unknown id is not the provider failing.
ANSWERED = (CardDeclined, ProviderRejected, IntentNotFound)


class CallRecorder:
    """Times one provider call and records it (calls and errors, by provider)."""

    def __init__(self, monitoring: MonitoringRepository, clock: Clock) -> None:
        self._monitoring = monitoring
        self._clock = clock

    async def call(self, provider: str, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        ok = True
        try:
            return await call()
        except ANSWERED:
            raise
        except ProviderError:
            ok = False
            raise
        finally:
            duration = int((time.perf_counter() - started) * 1000)
            try:
                await self._monitoring.record_provider_call(
                    ProviderCall(new_id(), provider, operation, ok, duration, self._clock.now())
                )
            except StoreError:
                log.warning("provider_call_not_recorded", operation=operation)


class RecordingPaymentProvider:
    """Wraps a provider; counts calls and errors (unreachable, 5xx, auth) in the store."""

    def __init__(
        self, inner: PaymentProvider, monitoring: MonitoringRepository, clock: Clock
    ) -> None:
        self.inner = inner
        self._recorder = CallRecorder(monitoring, clock)

    @property
    def name(self) -> str:
        return self.inner.name

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self._recorder.call(self.inner.name, operation, call)

    async def create_intent(
        self, *, amount: int, currency: str, order_id: str, idempotency_key: str
    ) -> PaymentIntent:
        return await self._call(
            "create_intent",
            lambda: self.inner.create_intent(
                amount=amount, currency=currency, order_id=order_id, idempotency_key=idempotency_key
            ),
        )

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        return await self._call("retrieve_intent", lambda: self.inner.retrieve_intent(intent_id))

    async def confirm_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        return await self._call(
            "confirm_intent", lambda: self.inner.confirm_intent(intent_id, payment_method)
        )

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        return await self._call("cancel_intent", lambda: self.inner.cancel_intent(intent_id))

    async def refund(
        self, *, intent_id: str, amount: int, reason: str | None, idempotency_key: str
    ) -> ProviderRefund:
        return await self._call(
            "refund",
            lambda: self.inner.refund(
                intent_id=intent_id, amount=amount, reason=reason, idempotency_key=idempotency_key
            ),
        )

    async def list_refunds(self, intent_id: str) -> list[ProviderRefund]:
        return await self._call("list_refunds", lambda: self.inner.list_refunds(intent_id))

    async def probe(self) -> None:
        await self.inner.probe()  # probes are recorded as probes, not as calls


class RecordingEventFeed:
    """Wraps an event feed: each page listed is a provider call, counted like the rest."""

    def __init__(self, inner: EventFeed, monitoring: MonitoringRepository, clock: Clock) -> None:
        self.inner = inner
        self._recorder = CallRecorder(monitoring, clock)

    @property
    def name(self) -> str:
        return self.inner.name

    async def list_events(
        self, *, types: Sequence[str], created_gte: int, starting_after: str | None
    ) -> EventPage:
        return await self._recorder.call(
            self.inner.name,
            "list_events",
            lambda: self.inner.list_events(
                types=types, created_gte=created_gte, starting_after=starting_after
            ),
        )
