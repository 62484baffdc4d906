"""Alerts: SMTP down for the whole retry horizon makes the emails dead and sends one
alert (signed, to the alert webhook), not one per delivery; once SMTP is back, the bulk
retry delivers each email exactly once. An integration that goes down alerts once."""

from __future__ import annotations

import base64
import email
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from orderhub.delivery.model import DeliveryFilter, DeliveryStatus
from orderhub.kit.clock import FrozenClock
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.peers import SmtpPeer, WebhookPeer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"alerts-secret-0123456789abcdef!!").decode()


async def _harness(
    make_harness: Callable[..., Any], smtp: SmtpPeer, hook: WebhookPeer, clock: FrozenClock
) -> Harness:
    harness: Harness = await make_harness(
        clock=clock,
        email_backend="smtp",
        smtp_url=smtp.url,
        sheets_backend="none",
        notify_backend="none",
        delivery_max_age_hours=1,
        alert_webhook_url=hook.url,
        alert_webhook_secret=SECRET,
    )
    return harness


async def _drain(h: Harness) -> None:
    while await h.container.worker.run_once() > 0:
        pass


def _verified(hook: WebhookPeer) -> list[dict[str, Any]]:
    """Every alert the webhook got, its Standard Webhooks signature checked."""
    verifier = Webhook(SECRET)
    payloads = []
    for headers, body, _status in hook.received:
        payload = verifier.verify(body, headers)  # raises on a bad signature
        assert headers["webhook-id"] == payload["id"]
        payloads.append(payload)
    return payloads


async def test_smtp_down_for_the_horizon_alerts_once_and_bulk_retry_mails_each_once(
    make_harness: Callable[..., Any], smtp_peer: SmtpPeer, webhook_peer: WebhookPeer
) -> None:
    clock = FrozenClock(T0)
    h = await _harness(make_harness, smtp_peer, webhook_peer, clock)
    smtp_peer.stop()
    ids = []
    for _ in range(3):
        created = await h.create_order()
        assert created.status_code == 201
        ids.append(created.json()["data"]["order"]["id"])
    store = h.container.store
    for _ in range(20):  # past the one-hour horizon, a retry at a time
        await _drain(h)
        await h.container.alerts.send_due()
        clock.advance(minutes=10)
    dead = await store.deliveries.list_page(DeliveryFilter(status=DeliveryStatus.DEAD), None, 10)
    assert len(dead) == 3
    assert smtp_peer.messages == []

    (alert,) = _verified(webhook_peer)  # one alert, not one per dead delivery
    assert alert["type"] == "alert.delivery_dead"
    assert alert["data"]["subject"] == "email"
    assert "went dead" in alert["data"]["message"]
    await h.container.alerts.send_due()
    assert len(webhook_peer.received) == 1  # sent once, not again

    smtp_peer.start()
    retried = await h.client.post(
        "/api/monitoring/deliveries/retry", json={"status": "dead"}, headers=AUTH
    )
    assert retried.json()["data"] == {"retried": 3}
    await _drain(h)
    again = await h.client.post(
        "/api/monitoring/deliveries/retry", json={"status": "dead"}, headers=AUTH
    )
    assert again.json()["data"] == {"retried": 0}
    await _drain(h)
    mailed = [email.message_from_bytes(m) for m in smtp_peer.messages]
    assert len(mailed) == 3
    assert sorted(next(i for i in ids if i in str(m)) for m in mailed) == sorted(ids)
    assert len(_verified(webhook_peer)) == 1  # the retry raised no alert


async def test_a_backend_going_down_alerts_once_and_a_failing_alert_never_alerts(
    make_harness: Callable[..., Any], smtp_peer: SmtpPeer, webhook_peer: WebhookPeer
) -> None:
    clock = FrozenClock(T0)
    h = await _harness(make_harness, smtp_peer, webhook_peer, clock)
    monitoring, alerts = h.container.monitoring, h.container.alerts
    await monitoring.probe_and_record()  # all up: nothing to say
    await alerts.send_due()
    assert webhook_peer.received == []
    smtp_peer.stop()
    for _ in range(3):  # down, still down, still down: one alert
        await monitoring.probe_and_record()
        await alerts.send_due()
        clock.advance(minutes=1)
    (alert,) = _verified(webhook_peer)
    assert alert["type"] == "alert.integration_down"
    assert alert["data"]["subject"] == "email"
    assert "SMTP Email is down" in alert["data"]["message"]

    # the alert webhook itself fails: retried with backoff, never an alert about it
    webhook_peer.status = 503
    smtp_peer.start()
    await monitoring.probe_and_record()
    clock.advance(minutes=16)  # a new outage, after the 15 minutes
    smtp_peer.stop()
    await monitoring.probe_and_record()
    for _ in range(5):
        await alerts.send_due()
        clock.advance(minutes=20)
    payloads = [json.loads(body) for _h, body, _s in webhook_peer.received]
    assert {p["type"] for p in payloads} == {"alert.integration_down"}
    assert len({p["id"] for p in payloads}) == 2  # the first alert, and the second retried
    errors = (await h.client.get("/api/monitoring/errors", headers=AUTH)).json()["data"]
    assert errors["count"] == 0  # an alert that cannot be sent is not an operator error
