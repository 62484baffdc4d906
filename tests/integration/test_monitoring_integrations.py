"""SPEC §11 `GET /api/monitoring/integrations`: status, uptime and lastChecked from the
probes the worker records (`probe_and_record`) and from recent delivery outcomes.

Backends go down for real: an aiosmtpd peer is stopped (and started again on the same
port), moto's server is stopped. A frozen clock places every probe at a known time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from orderhub.delivery.integrations.base import TransientDeliveryError
from orderhub.kit.clock import FrozenClock
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.integrations import UnreachableProvider, recorded_harness
from tests.fixtures.peers import Moto, SmtpPeer
from tests.fixtures.production import seed_production
from tests.fixtures.stripe_server import FakeStripe

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
ENTRY_KEYS = {"name", "status", "lastChecked", "uptime"}
PROVIDER_KEYS = ENTRY_KEYS | {"lastReconciledAt"}  # the payment provider's entry


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def integrations(h: Harness) -> dict[str, Any]:
    response = await h.client.get("/api/monitoring/integrations", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert set(body["data"]) == {"timestamp", "integrations"}
    result: dict[str, Any] = body["data"]["integrations"]
    return result


async def probe(h: Harness, clock: FrozenClock, *, minutes: float = 1) -> None:
    await h.container.monitoring.probe_and_record()
    clock.advance(minutes=minutes)


# -- uptime and status from probes ------------------------------------------------------------


async def test_uptime_status_and_last_checked_follow_the_probes(
    make_harness: Callable[..., Any], smtp_peer: SmtpPeer
) -> None:
    clock = FrozenClock(T0)
    h: Harness = await make_harness(clock=clock, email_backend="smtp", smtp_url=smtp_peer.url)

    before = await integrations(h)
    assert set(before) == {"sqlite", "sandbox", "smtp", "csv", "notificationsFile"}
    for name, entry in before.items():
        assert set(entry) == (PROVIDER_KEYS if name == "sandbox" else ENTRY_KEYS), name
        assert entry["uptime"] == "n/a", name  # no probe yet
        assert entry["lastChecked"] is None, name
        assert isinstance(entry["name"], str) and entry["name"], name

    for _ in range(9):
        await probe(h, clock)
    smtp_peer.stop()
    down_at = clock.now()
    await h.container.monitoring.probe_and_record()

    after = await integrations(h)
    assert after["smtp"]["status"] == "down"  # the last probe failed
    assert after["smtp"]["uptime"] == "90.0%"  # 9 of 10
    assert after["smtp"]["lastChecked"] == iso(down_at)
    for name in ("sqlite", "sandbox", "csv", "notificationsFile"):
        assert after[name]["status"] == "operational", name
        assert after[name]["uptime"] == "100.0%", name
        assert after[name]["lastChecked"] == iso(down_at), name

    clock.advance(minutes=1)
    smtp_peer.start()  # back, on the same port
    up_at = clock.now()
    await h.container.monitoring.probe_and_record()
    again = await integrations(h)
    assert again["smtp"]["status"] == "operational"
    assert again["smtp"]["uptime"] == "90.9%"  # 10 of 11
    assert again["smtp"]["lastChecked"] == iso(up_at)
    assert again["smtp"]["lastChecked"].endswith(".250Z")


async def test_uptime_counts_the_last_24_hours_and_old_probes_are_pruned(
    make_harness: Callable[..., Any], smtp_peer: SmtpPeer
) -> None:
    clock = FrozenClock(T0)
    h: Harness = await make_harness(clock=clock, email_backend="smtp", smtp_url=smtp_peer.url)
    monitoring = h.container.store.monitoring
    smtp_peer.stop()
    for _ in range(3):
        await probe(h, clock)  # three failures at T0
    assert (await integrations(h))["smtp"]["uptime"] == "0.0%"

    clock.at = T0 + timedelta(hours=25)
    smtp_peer.start()
    await h.container.monitoring.probe_and_record()
    current = await integrations(h)
    assert current["smtp"]["uptime"] == "100.0%"  # the failures are more than 24 h old
    assert current["smtp"]["status"] == "operational"
    kept = {s.name: s.checks for s in await monitoring.probe_summaries(T0 - timedelta(days=30))}
    assert kept["smtp"] == 4  # older than a day, but still kept

    clock.at = T0 + timedelta(days=3)
    await h.container.monitoring.probe_and_record()
    current = await integrations(h)
    assert current["smtp"]["uptime"] == "100.0%"
    assert current["smtp"]["lastChecked"] == iso(T0 + timedelta(days=3))
    kept = {s.name: s.checks for s in await monitoring.probe_summaries(T0 - timedelta(days=30))}
    # the probes of T0 are gone: only the recent ones remain in the store
    assert kept["smtp"] == 2
    assert kept["sqlite"] == 2


async def test_a_failing_delivery_makes_its_integration_degraded(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    rec.notifications.script.failures = [TransientDeliveryError("HTTP 503")]
    created = await h.create_order()
    assert created.status_code == 201
    await h.container.worker.run_once()
    clock.advance(seconds=1)
    await h.container.monitoring.probe_and_record()

    now = await integrations(h)
    assert now["notificationsFile"]["status"] == "degraded"
    assert now["emailFile"]["status"] == "operational"
    assert now["csv"]["status"] == "operational"
    assert now["sqlite"]["status"] == "operational"
    assert now["sandbox"]["status"] == "operational"

    clock.advance(minutes=14)
    assert (await integrations(h))["notificationsFile"]["status"] == "degraded"
    clock.advance(minutes=1)  # the failure is now more than 15 minutes old
    assert (await integrations(h))["notificationsFile"]["status"] == "operational"


async def test_down_wins_over_degraded_and_degraded_outlives_recovery(
    make_harness: Callable[..., Any], smtp_peer: SmtpPeer
) -> None:
    clock = FrozenClock(T0)
    h: Harness = await make_harness(clock=clock, email_backend="smtp", smtp_url=smtp_peer.url)
    smtp_peer.stop()
    assert (await h.create_order()).status_code == 201
    await h.container.worker.run_once()  # the confirmation email cannot be sent
    clock.advance(seconds=1)
    await h.container.monitoring.probe_and_record()
    assert (await integrations(h))["smtp"]["status"] == "down"

    clock.advance(minutes=1)
    smtp_peer.start()
    await h.container.monitoring.probe_and_record()
    # it answers probes again, but a delivery failed a minute ago
    assert (await integrations(h))["smtp"]["status"] == "degraded"
    clock.advance(minutes=16)
    await h.container.monitoring.probe_and_record()
    assert (await integrations(h))["smtp"]["status"] == "operational"


async def test_a_payment_provider_failing_calls_is_degraded(
    make_harness: Callable[..., Any],
) -> None:
    clock = FrozenClock(T0)
    h: Harness = await make_harness(clock=clock)
    recorded: Any = h.container.recorded_payments
    sandbox, recorded.inner = recorded.inner, UnreachableProvider()
    assert (await h.create_order()).status_code == 502
    recorded.inner = sandbox
    clock.advance(seconds=1)
    await h.container.monitoring.probe_and_record()  # the sandbox itself answers probes
    now = await integrations(h)
    assert now["sandbox"]["status"] == "degraded"
    assert now["sandbox"]["uptime"] == "100.0%"
    clock.advance(minutes=15)
    assert (await integrations(h))["sandbox"]["status"] == "operational"


async def test_integrations_that_are_off_are_not_configured(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(
        email_backend="none", sheets_backend="none", notify_backend="none"
    )
    await h.container.monitoring.probe_and_record()
    entries = await integrations(h)
    assert entries["sqlite"]["status"] == "operational"
    assert entries["sandbox"]["status"] == "operational"
    off = {k: v for k, v in entries.items() if k not in {"sqlite", "sandbox"}}
    assert len(off) == 3  # email, sheets and notifications
    for name, entry in off.items():
        assert entry["status"] == "not_configured", name
        assert entry["lastChecked"] is None, name


# -- AWS ------------------------------------------------------------------------------------


async def test_sns_is_grouped_under_aws(make_harness: Callable[..., Any], moto: Moto) -> None:
    topic = moto.create_topic()
    clock = FrozenClock(T0)
    h: Harness = await make_harness(clock=clock, notify_backend="sns", sns_topic_arn=topic)

    before = await integrations(h)
    assert set(before) == {"sqlite", "sandbox", "emailFile", "csv", "aws"}
    assert before["aws"]["name"] == "AWS Services"
    assert before["aws"]["lastChecked"] is None
    assert set(before["aws"]["services"]) == {"sns"}

    await probe(h, clock)
    up = await integrations(h)
    assert up["aws"]["status"] == "operational"
    assert up["aws"]["services"] == {"sns": "operational"}
    assert up["aws"]["lastChecked"] == iso(T0)
    assert "sns" not in up

    moto.stop()
    down_at = clock.now()
    await h.container.monitoring.probe_and_record()
    down = await integrations(h)
    assert down["aws"]["status"] == "down"
    assert down["aws"]["services"] == {"sns": "down"}
    assert down["aws"]["lastChecked"] == iso(down_at)
    assert down["emailFile"]["status"] == "operational"


async def test_seed_configuration_keys(
    make_harness: Callable[..., Any], moto: Moto, fake_stripe: FakeStripe, google_credentials: str
) -> None:
    clock = FrozenClock(T0)
    h: Harness = await make_harness(
        clock=clock,
        **seed_production(fake_stripe, moto, google_credentials),
    )
    await h.container.monitoring.probe_and_record()
    entries = await integrations(h)
    # the seed's four, beside the store (SQLite here; the seed's DynamoDB would be in aws)
    assert set(entries) == {"stripe", "sendgrid", "googleSheets", "aws", "sqlite"}
    assert entries["stripe"]["name"] == "Stripe Payment Gateway"
    assert entries["sendgrid"]["name"] == "SendGrid Email Service"
    assert entries["googleSheets"]["name"] == "Google Sheets API"
    assert entries["aws"]["name"] == "AWS Services"
    assert entries["aws"]["services"] == {"sns": "operational"}
    assert entries["stripe"]["status"] == "operational"
    assert entries["stripe"]["uptime"] == "100.0%"
    assert entries["stripe"]["lastChecked"] == iso(T0)
    for name in ("sendgrid", "googleSheets"):
        assert entries[name]["status"] == "operational", name


async def test_integrations_need_credentials(harness: Harness) -> None:
    response = await harness.client.get("/api/monitoring/integrations")
    assert response.status_code == 401
    assert response.json()["success"] is False
