"""Alerts: operators are told when a delivery goes dead or an integration goes down.

At most one alert per integration per 15 minutes (a store lease `alert:<integration>`,
so every process on the store counts together), to `ALERT_EMAIL` through the configured
email backend and/or to `ALERT_WEBHOOK_URL` signed like the notification webhooks. An
alert is first written to the store and then sent by the worker, one sender at a time
(the lease `alerts`), with retries and backoff like a delivery. An alert that cannot be
sent is only logged: alerts are not deliveries and are not probed, so their own failure
never raises another alert.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from orderhub.delivery.integrations.base import (
    EmailMessage,
    EmailSender,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from orderhub.delivery.model import DueDelivery, next_attempt
from orderhub.kit.clock import Clock, iso_ms
from orderhub.kit.ids import new_id
from orderhub.kit.periodic import run_every
from orderhub.store.protocol import Alert, Store, StoreError

log = structlog.get_logger(__name__)

ALERT_GAP = timedelta(minutes=15)  # at most one alert per integration in this time
SENDER_LEASE = "alerts"
SENDER_LEASE_FOR = timedelta(minutes=2)
SEND_EVERY_SECONDS = 2.0
DUE_PER_PASS = 20
MAX_ERROR_CHARS = 2000


class AlertPoster(Protocol):
    """A signed webhook POST (the notification webhook's own client)."""

    async def post(self, msg_id: str, payload: dict[str, Any]) -> None: ...


class AlertService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        email: EmailSender | None,
        email_from: str,
        email_to: str,
        webhook: AlertPoster | None,
        shop_name: str,
        max_age: timedelta,
    ) -> None:
        self._store = store
        self._clock = clock
        self._email = email if email_to else None
        self._email_from = email_from
        self._email_to = email_to
        self._webhook = webhook
        self._shop = shop_name
        self._max_age = max_age
        self._owner = str(new_id())

    @property
    def channels(self) -> list[str]:
        return [
            name
            for name, sender in (("email", self._email), ("webhook", self._webhook))
            if sender is not None
        ]

    # -- raising ----------------------------------------------------------------------

    async def raise_alert(self, subject: str, kind: str, message: str) -> bool:
        """Queue an alert about `subject` unless one was raised in the last 15 minutes;
        True when it was queued."""
        channels = self.channels
        if not channels:
            return False
        now = self._clock.now()
        if not await self._store.leases.acquire(
            f"alert:{subject}", str(new_id()), now + ALERT_GAP, now
        ):
            return False  # told already, less than 15 minutes ago
        await self._store.alerts.add(
            [
                Alert(new_id(), subject, kind, message, channel, "pending", 0, now, None, now)
                for channel in channels
            ]
        )
        log.warning("alert_raised", subject=subject, kind=kind, message=message)
        return True

    async def delivery_dead(self, due: DueDelivery, error: str) -> bool:
        integration = due.delivery.integration.value
        return await self.raise_alert(
            integration,
            "delivery_dead",
            f"A delivery to {integration} went dead: {due.event.type.value} of order "
            f"{due.delivery.order_id} ({error}). Further {integration} failures in the next "
            "15 minutes are not alerted; the dead deliveries are listed by "
            "GET /api/monitoring/deliveries?status=dead and put back by "
            "POST /api/monitoring/deliveries/retry.",
        )

    async def integration_down(self, subject: str, backend: str, error: str | None) -> bool:
        return await self.raise_alert(
            subject,
            "integration_down",
            f"{backend} is down: its health check failed ({error or 'no answer'}).",
        )

    # -- sending ----------------------------------------------------------------------

    async def send_due(self) -> int:
        """Send the alerts that are due, one sender at a time across every process;
        returns how many were sent."""
        now = self._clock.now()
        leases = self._store.leases
        if not await leases.acquire(SENDER_LEASE, self._owner, now + SENDER_LEASE_FOR, now):
            return 0
        try:
            sent = 0
            for alert in await self._store.alerts.due(now, DUE_PER_PASS):
                sent += await self._send(alert)
            return sent
        finally:
            await leases.release(SENDER_LEASE, self._owner)

    async def run(self, stop: asyncio.Event) -> None:
        """The worker's pass over queued alerts."""
        if not self.channels:
            return
        await run_every(
            stop, SEND_EVERY_SECONDS, self.send_due, name="alerts", skip_on=(StoreError,)
        )

    async def _send(self, alert: Alert) -> int:
        now = self._clock.now()
        try:
            if alert.channel == "email" and self._email is not None:
                await self._email.send(self._email_message(alert))
            elif alert.channel == "webhook" and self._webhook is not None:
                await self._webhook.post(str(alert.id), self._payload(alert))
            else:
                raise PermanentDeliveryError(f"the {alert.channel} channel is not configured")
        except TransientDeliveryError as exc:
            retry_at = next_attempt(alert.attempts + 1, now, exc.retry_after)
            dead = retry_at - alert.created_at > self._max_age
            await self._failed(alert, str(exc), None if dead else retry_at)
            return 0
        except Exception as exc:  # permanent, or a sender's bug: never retried forever
            await self._failed(alert, str(exc) or type(exc).__name__, None)
            return 0
        await self._store.alerts.save(replace(alert, status="sent", attempts=alert.attempts + 1))
        return 1

    async def _failed(self, alert: Alert, error: str, retry_at: datetime | None) -> None:
        log.warning(
            "alert_not_sent",
            alert_id=str(alert.id),
            channel=alert.channel,
            error=error,
            gave_up=retry_at is None,
        )
        await self._store.alerts.save(
            replace(
                alert,
                status="pending" if retry_at else "dead",
                attempts=alert.attempts + 1,
                next_attempt_at=retry_at or alert.next_attempt_at,
                last_error=error[:MAX_ERROR_CHARS],
            )
        )

    def _payload(self, alert: Alert) -> dict[str, Any]:
        return {
            "id": str(alert.id),
            "type": f"alert.{alert.kind}",
            "createdAt": iso_ms(alert.created_at),
            "data": {"subject": alert.subject, "message": alert.message},
        }

    def _email_message(self, alert: Alert) -> EmailMessage:
        title = f"[{self._shop}] {alert.subject}: {alert.kind.replace('_', ' ')}"
        return EmailMessage(
            delivery_id=str(alert.id),
            event_id=str(alert.id),
            sender=self._email_from,
            to=self._email_to,
            subject=title,
            text=f"{alert.message}\n\nRaised at {iso_ms(alert.created_at)}.\n",
            html=f"<p>{html.escape(alert.message)}</p><p>Raised at {iso_ms(alert.created_at)}.</p>",
        )
