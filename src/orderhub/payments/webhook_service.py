"""Stripe webhook intake (SPEC §9): verify, store by event id, apply, then answer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from orderhub.kit.clock import Clock
from orderhub.kit.errors import AppError, ServiceUnavailable
from orderhub.monitoring.error_log import Component, ErrorLog
from orderhub.orders.domain import EventSource
from orderhub.payments.outcomes import OutcomeRejected, PaymentOutcome
from orderhub.payments.provider import ProviderError
from orderhub.payments.service import PaymentService
from orderhub.payments.stripe_events import Unapplicable, outcomes_of, text_field, verify
from orderhub.store.protocol import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EventApplied:
    """What handling an event did: `applied`, `ignored`, `rejected` or `duplicate`, and
    how many outcomes changed an order."""

    outcome: str
    changed: int = 0


class WebhookService:
    def __init__(
        self,
        store: Store,
        payments: PaymentService,
        clock: Clock,
        error_log: ErrorLog,
        signing_secret: str,
    ) -> None:
        self._signing_secret = signing_secret
        self._store = store
        self._payments = payments
        self._clock = clock
        self._error_log = error_log

    async def receive(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Verify a delivery as Stripe signed it (400 if not), apply it, and return it."""
        event = verify(payload, signature, self._signing_secret, time.time())
        outcome = await self.handle(event)
        log.info("stripe_event", event_id=event["id"], type=event["type"], outcome=outcome)
        return event

    async def handle(self, event: dict[str, Any]) -> str:
        """Apply a verified event once. Returns its outcome; raises if applying failed
        (the event stays unfinished, and the 5xx makes Stripe send it again).

        Each outcome is applied on its own: one that does not fit its order (a refund of
        another payment, a refund beyond what was paid) is recorded as an error and not
        applied, and the others still are; the event is then finished as `rejected`."""
        return (await self.apply_event(event)).outcome

    async def apply_event(self, event: dict[str, Any]) -> EventApplied:
        """`handle`, also counting the orders the event changed (the reconciliation's
        way in: an event fetched from the provider is as authoritative as a signed one)."""
        event_id, kind = event["id"], event["type"]
        if not await self._store.webhook_events.begin(event_id, kind, self._clock.now()):
            return EventApplied("duplicate")
        try:
            outcomes = outcomes_of(event)
            if outcomes is None:
                outcomes = await self._refunds_from_provider(event["data"]["object"])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            return EventApplied(
                await self._reject(event_id, kind, f"malformed {kind} object: {exc}")
            )
        if not outcomes:
            await self._store.webhook_events.finish(event_id, "ignored", None, self._clock.now())
            return EventApplied("ignored")
        changed = 0
        rejected: list[str] = []
        rejected_order: uuid.UUID | None = None  # named in the error log when known
        for outcome in outcomes:
            if isinstance(outcome, Unapplicable):
                rejected.append(outcome.reason)
                continue
            try:
                _order, moved = await self._payments.apply_changed(outcome, EventSource.WEBHOOK)
                changed += moved
            except OutcomeRejected as exc:
                rejected.append(str(exc))
                rejected_order = rejected_order or await self._order_of(outcome.intent_id)
            except AppError as exc:
                # a conflict that outlasted the retries, a provider that is down: try later
                log.warning("webhook_apply_failed", event_id=event_id, error=exc.message)
                raise ServiceUnavailable(
                    "The event could not be applied now; it will be retried",
                    code="webhook_apply_failed",
                ) from exc
        if rejected:
            reason = "; ".join(rejected)
            return EventApplied(await self._reject(event_id, kind, reason, rejected_order), changed)
        await self._store.webhook_events.finish(event_id, "applied", None, self._clock.now())
        return EventApplied("applied", changed)

    async def _refunds_from_provider(
        self, charge: dict[str, Any]
    ) -> list[PaymentOutcome | Unapplicable]:
        intent_id = text_field(charge, "payment_intent")
        try:
            return list(await self._payments.provider_refunds(intent_id))
        except ProviderError as exc:
            raise ServiceUnavailable(
                "The refunds of this charge could not be read from the provider",
                code="payment_provider_error",
            ) from exc

    async def _order_of(self, intent_id: str) -> uuid.UUID | None:
        """The order an intent belongs to, when one does (for the error log)."""
        async with self._store.unit_of_work() as uow:
            order = await uow.orders.get_by_payment_intent(intent_id)
        return order.id if order is not None else None

    async def _reject(
        self, event_id: str, kind: str, reason: str, order_id: uuid.UUID | None = None
    ) -> str:
        await self._error_log.record(
            Component.WEBHOOKS,
            f"Rejected Stripe event {event_id} ({kind})",
            error=reason,
            order_id=order_id,
        )
        await self._store.webhook_events.finish(event_id, "rejected", reason, self._clock.now())
        return "rejected"
