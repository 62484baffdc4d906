"""Reconciliation against the local Stripe-protocol server and the sandbox: payments whose
webhooks never arrived (or arrived with a wrong signature) are healed by one run, with
one email each; a second run changes nothing; the webhook that comes late is a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orderhub.kit.clock import FrozenClock, iso_ms
from orderhub.payments.provider import CardDeclined
from orderhub.payments.reconcile import ReconcileBusy
from orderhub.payments.sandbox import SandboxPaymentProvider
from orderhub.payments.stripe import StripePaymentProvider
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.integrations import Recorders, recorded_harness
from tests.fixtures.stripe_server import WEBHOOK_SECRET, FakeStripe, signed_webhook

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _drain(h: Harness) -> None:
    while await h.container.worker.run_once() > 0:
        pass


async def _stripe(
    make_harness: Callable[..., Any], fake: FakeStripe, rec: Recorders, **options: Any
) -> Harness:
    """Stripe through the real SDK; events listed two to a page, to walk the pages."""
    provider = StripePaymentProvider(fake.api_key, fake.url, events_page=2)
    harness: Harness = await make_harness(
        payment_provider="stripe",
        stripe_secret_key=fake.api_key,
        stripe_api_base=fake.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        payments=provider,
        integrations=rec.integrations(),
        **options,
    )
    return harness


async def _deliver(h: Harness, event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> Any:
    body, headers = signed_webhook(event, secret)
    return await h.client.post("/webhooks/stripe", content=body, headers=headers)


def _receipts(rec: Recorders) -> list[str]:
    return sorted(m.subject for m in rec.email.sent if m.subject.startswith("order.paid"))


async def test_missed_webhooks_heal_in_one_run_with_one_email_each(
    make_harness: Callable[..., Any], fake_stripe: FakeStripe
) -> None:
    rec = Recorders()
    h = await _stripe(make_harness, fake_stripe, rec)
    orders = [await h.new_order() for _ in range(3)]
    for order in orders:  # the customers pay in the browser
        fake_stripe.succeed_intent(order["paymentIntentId"])
    succeeded = {
        e["data"]["object"]["id"]: e for e in fake_stripe.events_of("payment_intent.succeeded")
    }
    wrong, lost, delivered = orders
    # one webhook signed with the wrong secret (rejected), one never sent, one delivered
    refused = await _deliver(h, succeeded[wrong["paymentIntentId"]], secret="whsec_wrong")
    assert refused.status_code == 400
    ok = await _deliver(h, succeeded[delivered["paymentIntentId"]])
    assert ok.status_code == 200
    await _drain(h)
    assert [(await h.get_order(o["id"]))["paymentStatus"] for o in orders] == [
        "pending",
        "pending",
        "completed",
    ]
    assert _receipts(rec) == [f"order.paid {delivered['id']}"]

    run = await h.container.reconcile.run()
    assert (run.checked, run.changed, run.errors) == (3, 2, 0)
    await _drain(h)
    for order in orders:
        healed = await h.get_order(order["id"])
        assert (healed["status"], healed["paymentStatus"]) == ("paid", "completed")
        assert healed["history"][-1]["source"] == "webhook"
    assert _receipts(rec) == sorted(f"order.paid {o['id']}" for o in orders)

    # the events were listed by type, since a moment, page after page
    listed = fake_stripe.requests_to("GET", "/v1/events")
    assert len(listed) == 2  # three events, two to a page
    assert set(listed[0].params["types"]) >= {"payment_intent.succeeded", "charge.refunded"}
    assert "gte" in listed[0].params["created"]
    assert (
        listed[1].params["starting_after"]
        == fake_stripe.events_of("payment_intent.succeeded")[1]["id"]
    )

    # a second run changes nothing, and nobody gets a second email
    before = [await h.get_order(o["id"]) for o in orders]
    again = await h.container.reconcile.run()
    assert (again.changed, again.errors) == (0, 0)
    await _drain(h)
    assert [await h.get_order(o["id"]) for o in orders] == before
    assert len(_receipts(rec)) == 3

    # Stripe's retry of the lost webhook arrives at last: a duplicate, nothing changes
    late = await _deliver(h, succeeded[lost["paymentIntentId"]])
    assert late.status_code == 200 and late.json() == {"received": True}
    await _drain(h)
    assert await h.get_order(lost["id"]) == before[1]
    assert len(_receipts(rec)) == 3

    entries = (await h.client.get("/api/monitoring/integrations", headers=AUTH)).json()["data"]
    assert entries["integrations"]["stripe"]["lastReconciledAt"] == iso_ms(again.finished_at)


async def test_a_run_lists_from_its_checkpoint_and_a_failed_listing_keeps_it(
    make_harness: Callable[..., Any], fake_stripe: FakeStripe
) -> None:
    rec = Recorders()
    h = await _stripe(make_harness, fake_stripe, rec)
    order = await h.new_order()
    fake_stripe.succeed_intent(order["paymentIntentId"])
    first = await h.container.reconcile.run()
    assert first.checkpoint is not None and first.changed == 1
    fake_stripe.clear_requests()
    second = await h.container.reconcile.run()
    (listed,) = fake_stripe.requests_to("GET", "/v1/events")
    overlap = int((first.checkpoint - timedelta(minutes=5)).timestamp())
    assert int(listed.params["created"]["gte"]) == overlap
    assert second.checkpoint == first.checkpoint

    async def stripe_calls() -> dict[str, int]:
        metrics = await h.client.get("/api/monitoring/metrics?timeRange=1h", headers=AUTH)
        counts: dict[str, int] = metrics.json()["data"]["integrations"]["stripe"]
        return counts

    before = await stripe_calls()
    fake_stripe.fail_next(500, count=10, path_prefix="/v1/events")
    failed = await h.container.reconcile.run()
    assert failed.errors == 1 and "events of stripe" in (failed.error or "")
    assert failed.checkpoint == first.checkpoint  # the next run lists those events again
    errors = (await h.client.get("/api/monitoring/errors", headers=AUTH)).json()["data"]
    assert any("list the events" in e["message"] for e in errors["errors"])
    # listing events is a call to Stripe like any other: counted, and its failure an error
    after = await stripe_calls()
    assert after["calls"] == before["calls"] + 1 and after["errors"] == before["errors"] + 1


async def test_unsettled_sandbox_payments_are_read_from_the_provider(
    make_harness: Callable[..., Any],
) -> None:
    h, rec, clock = await recorded_harness(make_harness, FrozenClock(T0))
    sandbox = h.container.payments
    assert isinstance(sandbox, SandboxPaymentProvider)
    paid, declined = await h.new_order(), await h.new_order()
    await sandbox.mark_succeeded(paid["paymentIntentId"])  # paid; orderhub never heard
    with contextlib.suppress(CardDeclined):
        await sandbox.confirm_intent(declined["paymentIntentId"], "pm_card_chargeDeclined")
    clock.advance(minutes=6)
    young = await h.new_order()  # created now: too young to be read
    await sandbox.mark_succeeded(young["paymentIntentId"])

    run = await h.container.reconcile.run()
    assert (run.checked, run.changed, run.errors) == (2, 2, 0)
    assert (await h.get_order(paid["id"]))["paymentStatus"] == "completed"
    assert (await h.get_order(declined["id"]))["paymentStatus"] == "failed"
    assert (await h.get_order(young["id"]))["paymentStatus"] == "pending"
    await _drain(h)
    assert _receipts(rec) == [f"order.paid {paid['id']}"]
    again = await h.container.reconcile.run()
    assert again.changed == 0


async def test_requested_refunds_are_sent_again_by_the_run(
    make_harness: Callable[..., Any], fake_stripe: FakeStripe
) -> None:
    clock = FrozenClock(T0)
    rec = Recorders()
    h = await _stripe(make_harness, fake_stripe, rec, clock=clock)
    order = await h.new_order()
    assert (await h.confirm(order)).status_code == 200
    fake_stripe.fail_next(500, count=10, path_prefix="/v1/refunds")
    refund = await h.client.post(
        "/api/payments/refund", json={"orderId": order["id"]}, headers=AUTH
    )
    assert refund.status_code == 502
    fake_stripe.clear_faults()
    assert (await h.get_order(order["id"]))["refunds"][0]["status"] == "requested"
    early = await h.container.reconcile.run()  # the refund was just tried: left alone
    assert (await h.get_order(order["id"]))["refunds"][0]["status"] == "requested"
    assert early.errors == 0
    clock.advance(minutes=3)
    run = await h.container.reconcile.run()
    assert run.changed >= 1 and run.errors == 0
    healed = await h.get_order(order["id"])
    assert healed["paymentStatus"] == "refunded"
    assert len(fake_stripe.refunds_for(order["paymentIntentId"])) == 1


async def test_one_run_at_a_time(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness()
    store = h.container.store
    now = h.container.clock.now()
    assert await store.leases.acquire(
        "reconcile", "another-worker", now + timedelta(minutes=1), now
    )
    with pytest.raises(ReconcileBusy):
        await h.container.reconcile.run()
    assert await h.container.reconcile.run_if_due(timedelta(minutes=5)) is None
    await store.leases.release("reconcile", "another-worker")
    first = await h.container.reconcile.run_if_due(timedelta(minutes=5))
    assert first is not None
    assert await h.container.reconcile.run_if_due(timedelta(minutes=5)) is None  # ran just now
    latest = await store.reconcile_runs.latest()
    assert latest is not None and latest.id == first.id


async def test_the_reconcile_command(
    make_harness: Callable[..., Any], fake_stripe: FakeStripe, tmp_path: Path
) -> None:
    h = await _stripe(make_harness, fake_stripe, Recorders())
    order = await h.new_order()
    fake_stripe.succeed_intent(order["paymentIntentId"])
    env = cli_env(
        h.settings.data_dir,
        DATABASE_URL=h.settings.database_url,
        STRIPE_SECRET_KEY=fake_stripe.api_key,
        STRIPE_API_BASE=fake_stripe.url,
        LOG_LEVEL="warning",
    )
    first = await asyncio.to_thread(run_cli, ["reconcile", "--since", "1h"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "reconciled: checked 1, changed 1, errors 0"
    assert (await h.get_order(order["id"]))["paymentStatus"] == "completed"
    again = await asyncio.to_thread(run_cli, ["reconcile"], env, tmp_path)
    assert again.stdout.strip() == "reconciled: checked 1, changed 0, errors 0"
    bad = await asyncio.to_thread(run_cli, ["reconcile", "--since", "soon"], env, tmp_path)
    assert bad.returncode == 2 and "--since" in bad.stderr


async def test_the_worker_reconciles_every_interval_and_never_with_zero(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(reconcile_interval_seconds=1)
    stop = asyncio.Event()
    worker = asyncio.create_task(h.container.run_worker(stop))
    try:
        async with asyncio.timeout(30):
            while await h.container.store.reconcile_runs.latest() is None:
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await worker
    never: Harness = await make_harness(reconcile_interval_seconds=0)
    async with asyncio.timeout(10):  # returns at once: there is nothing to wait for
        await never.container.reconcile.run_periodically(asyncio.Event(), 0)
    assert await never.container.store.reconcile_runs.latest() is None
