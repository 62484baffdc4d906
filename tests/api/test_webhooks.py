"""SPEC §9: Stripe webhooks verified, stored by id, applied once, before the 200."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.app import AUTH, Harness
from tests.fixtures.payments import Payments
from tests.fixtures.stripe_server import WEBHOOK_SECRET, make_event, signed_webhook


def _intent_event(order: dict[str, Any], kind: str, **changes: Any) -> dict[str, Any]:
    obj = {
        "id": order["paymentIntentId"],
        "object": "payment_intent",
        "amount": 10997,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"orderId": order["id"]},
        **changes,
    }
    return make_event(kind, obj)


async def _errors(p: Payments) -> list[Any]:
    since = p.harness.container.clock.now().replace(year=2000)
    return await p.harness.container.store.errors.recent(50, since)


# -- signatures -------------------------------------------------------------------------


async def test_missing_wrong_stale_and_multi_v1_signatures(stripe_payments: Payments) -> None:
    p = stripe_payments
    order = await p.create_order()
    event = _intent_event(order, "payment_intent.succeeded")
    body, headers = signed_webhook(event, WEBHOOK_SECRET)

    missing = await p.client.post("/webhooks/stripe", content=body, headers={})
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "Missing Stripe-Signature header"

    wrong = await p.deliver(event, secret="whsec_someone_else")
    assert wrong.status_code == 400
    assert wrong.json()["success"] is False

    stale = await p.deliver(event, timestamp=int(time.time()) - 301)
    assert stale.status_code == 400

    tampered = await p.client.post(
        "/webhooks/stripe", content=body.replace(b"10997", b"1"), headers=headers
    )
    assert tampered.status_code == 400
    assert (await p.get_order(order["id"]))["paymentStatus"] == "pending"

    # several v1 values (a secret being rolled): accepted when one of them is right
    rolled = await p.deliver(event, extra_v1=["00" * 32])
    assert rolled.status_code == 200
    assert rolled.json() == {"received": True}
    assert (await p.get_order(order["id"]))["status"] == "paid"


async def test_no_secret_configured_accepts_nothing(
    make_harness: Callable[..., Any], fake_stripe: Any
) -> None:
    h: Harness = await make_harness()
    order = (await h.create_order()).json()["data"]["order"]
    body, headers = signed_webhook(_intent_event(order, "payment_intent.succeeded"), "")
    response = await h.client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400
    status = (await h.client.get(f"/api/orders/{order['id']}", headers=AUTH)).json()["data"]
    assert status["paymentStatus"] == "pending"


async def test_webhooks_are_not_rate_limited_nor_need_credentials(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(rate_limit_max=1, stripe_webhook_secret=WEBHOOK_SECRET)
    for n in range(3):
        event = make_event("customer.created", {"id": f"cus_{n}", "object": "customer"})
        body, headers = signed_webhook(event, WEBHOOK_SECRET)
        response = await h.client.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers


# -- applying ---------------------------------------------------------------------------


async def test_duplicated_event_is_applied_once(payments: Payments) -> None:
    order = await payments.create_order()
    await payments.succeed_at_provider(order["paymentIntentId"])
    event = _intent_event(order, "payment_intent.succeeded")
    first = await payments.deliver(event)
    second = await payments.deliver(event)
    assert first.status_code == second.status_code == 200
    history = (await payments.get_order(order["id"]))["history"]
    assert [h["type"] for h in history] == ["order.created", "order.paid"]
    assert history[1]["source"] == "webhook"


async def test_late_payment_failed_after_succeeded_changes_nothing(payments: Payments) -> None:
    order = await payments.paid_order()
    late = _intent_event(order, "payment_intent.payment_failed", status="requires_payment_method")
    assert (await payments.deliver(late)).status_code == 200
    after = await payments.assert_order(order["id"], "paid", "completed")
    assert len(after["history"]) == 2


async def test_payment_failed_then_succeeded_by_webhooks(payments: Payments) -> None:
    order = await payments.create_order()
    failed = _intent_event(order, "payment_intent.payment_failed", status="requires_payment_method")
    await payments.deliver(failed)
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "failed"
    await payments.deliver(_intent_event(order, "payment_intent.succeeded"))
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "completed"


async def test_charge_refunded_before_payment_succeeded(stripe_payments: Payments) -> None:
    p = stripe_payments
    fake = p.stripe
    order = await p.create_order()
    fake.succeed_intent(order["paymentIntentId"])
    # refund at Stripe directly (e.g. from the dashboard), then deliver the events out of order
    import stripe

    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url})
    await client.v1.refunds.create_async({"payment_intent": order["paymentIntentId"]})
    refunded = fake.events_of("charge.refunded")[-1]
    succeeded = fake.events_of("payment_intent.succeeded")[-1]
    assert (await p.deliver(refunded)).status_code == 200
    after = await p.get_order(order["id"])
    assert after["paidAt"] is not None
    assert (after["status"], after["paymentStatus"]) == ("refunded", "refunded")
    assert after["refundedAmount"] == 109.97
    assert (await p.deliver(succeeded)).status_code == 200
    await p.assert_order(
        order["id"], "refunded", "refunded", ["order.created", "order.paid", "order.refunded"]
    )


async def test_our_own_refund_reported_by_webhook_is_not_counted_twice(
    stripe_payments: Payments,
) -> None:
    p = stripe_payments
    assert p.fake is not None
    order = await p.paid_order()
    assert (await p.refund(order["id"], amount=10)).status_code == 200
    for event in p.fake.events_of("charge.refunded"):
        assert (await p.deliver(event)).status_code == 200
    after = await p.get_order(order["id"])
    assert after["refundedAmount"] == 10.0
    assert len(after["refunds"]) == 1


async def test_payment_succeeding_on_a_cancelled_order_is_refunded(payments: Payments) -> None:
    order = await payments.create_order()
    intent_id = order["paymentIntentId"]
    # the order is cancelled in orderhub while the customer's payment is going through
    await payments.cancel_behind_the_api(order)
    await payments.succeed_at_provider(intent_id)
    response = await payments.deliver(_intent_event(order, "payment_intent.succeeded"))
    assert response.status_code == 200
    final = await payments.assert_order(order["id"], "cancelled", "refunded")
    assert final["refundedAmount"] == 109.97
    assert final["refunds"][0]["id"].startswith("re_")
    if payments.fake is not None:
        assert [r["amount"] for r in payments.fake.refunds_for(intent_id)] == [10997]


async def test_failed_refund_puts_its_amount_back(stripe_payments: Payments) -> None:
    p = stripe_payments
    assert p.fake is not None
    order = await p.paid_order()
    refund = (await p.refund(order["id"])).json()["data"]
    assert (await p.get_order(order["id"]))["status"] == "refunded"
    p.fake.fail_refund(refund["id"])
    updated = p.fake.events_of("charge.refund.updated")[-1]
    assert (await p.deliver(updated)).status_code == 200
    after = await p.assert_order(order["id"], "paid", "completed")
    assert after["refundedAmount"] == 0.0
    assert after["refunds"][0]["status"] == "failed"
    assert after["history"][-1]["type"] == "order.updated"
    # the money is refundable again
    assert (await p.refund(order["id"], amount=5)).status_code == 200


async def test_amount_mismatch_is_rejected_and_recorded(payments: Payments) -> None:
    order = await payments.create_order()
    event = _intent_event(order, "payment_intent.succeeded", amount=1)
    response = await payments.deliver(event)
    assert response.status_code == 200  # recorded, not retried forever
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "pending"
    errors = await _errors(payments)
    assert errors[0].service == "webhookService"
    assert event["id"] in errors[0].message
    assert "amount 1 differs" in (errors[0].error or "")


async def test_unknown_intent_and_unhandled_types(payments: Payments) -> None:
    ghost = make_event(
        "payment_intent.succeeded",
        {"id": "pi_ghost", "object": "payment_intent", "amount": 100, "currency": "usd"},
    )
    assert (await payments.deliver(ghost)).status_code == 200
    assert any("pi_ghost" in (e.error or "") for e in await _errors(payments))
    other = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await payments.deliver(other)).status_code == 200


async def test_processing_and_canceled_events(payments: Payments) -> None:
    order = await payments.create_order()
    processing = _intent_event(order, "payment_intent.processing", status="processing")
    assert (await payments.deliver(processing)).status_code == 200
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "pending"
    canceled = _intent_event(order, "payment_intent.canceled", status="canceled")
    assert (await payments.deliver(canceled)).status_code == 200
    final = await payments.assert_order(order["id"], "cancelled", "cancelled")
    assert final["history"][-1]["source"] == "webhook"


async def test_failure_while_applying_is_a_5xx_and_the_retry_applies(
    payments: Payments, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await payments.create_order()
    event = _intent_event(order, "payment_intent.succeeded")
    service = payments.harness.container.payment_service
    real_apply = service.apply_changed
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            from orderhub.store.protocol import StoreError

            raise StoreError("store did not answer")
        return await real_apply(*args, **kwargs)

    monkeypatch.setattr(service, "apply_changed", flaky)
    failed = await payments.deliver(event)
    assert failed.status_code >= 500
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "pending"
    retried = await payments.deliver(event)
    assert retried.status_code == 200
    assert (await payments.get_order(order["id"]))["status"] == "paid"


async def test_malformed_but_signed_payload_is_400(stripe_payments: Payments) -> None:
    from tests.fixtures.stripe_server import sign_payload

    for payload in (b"[]", b"not json", b'{"id": "evt_1"}'):
        headers = {"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)}
        response = await stripe_payments.client.post(
            "/webhooks/stripe", content=payload, headers=headers
        )
        assert response.status_code == 400, payload


async def test_confirm_racing_the_webhook_pays_once(payments: Payments) -> None:
    import asyncio

    order = await payments.create_order()
    event = _intent_event(order, "payment_intent.succeeded")
    confirm, webhook = await asyncio.gather(payments.confirm(order), payments.deliver(event))
    assert confirm.status_code == 200 and webhook.status_code == 200
    history = [h["type"] for h in (await payments.get_order(order["id"]))["history"]]
    assert history == ["order.created", "order.paid"]


async def test_charge_refunded_without_embedded_refunds_asks_the_provider(
    stripe_payments: Payments,
) -> None:
    """Current API versions no longer embed `refunds` in the charge."""
    p = stripe_payments
    fake = p.stripe
    order = await p.paid_order()
    assert (await p.refund(order["id"], amount=30)).status_code == 200
    import stripe

    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url})
    for amount in (1000, 2000):  # two refunds made in Stripe's dashboard
        await client.v1.refunds.create_async(
            {"payment_intent": order["paymentIntentId"], "amount": amount}
        )
    for event in fake.events_of("charge.refunded"):
        stripped = {**event, "id": event["id"] + "_bare"}
        charge = dict(stripped["data"]["object"])
        charge.pop("refunds", None)
        stripped["data"] = {"object": charge}
        assert (await p.deliver(stripped)).status_code == 200
    after = await p.get_order(order["id"])
    assert sorted(r["amount"] for r in after["refunds"]) == [10.0, 20.0, 30.0]
    assert after["refundedAmount"] == 60.0
    assert (await p.refund(order["id"])).json()["data"]["amount"] == 10997 - 6000


async def test_auto_refund_with_the_provider_down_fails_the_webhook_until_it_is_sent(
    stripe_payments: Payments,
) -> None:
    p = stripe_payments
    fake = p.stripe
    order = await p.create_order()
    fake.succeed_intent(order["paymentIntentId"])
    # cancelled in orderhub (its intent already succeeded at Stripe, unknown to us)
    await p.cancel_behind_the_api(order)
    p.refunds_fail()
    event = _intent_event(order, "payment_intent.succeeded")
    failed = await p.deliver(event)
    assert failed.status_code == 503
    assert fake.refunds_for(order["paymentIntentId"]) == []
    fake.clear_faults()
    retried = await p.deliver(event)
    assert retried.status_code == 200
    assert [r["amount"] for r in fake.refunds_for(order["paymentIntentId"])] == [10997]
    await p.assert_order(order["id"], "cancelled", "refunded")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda c: c.update(refunds=[{"id": "re_x"}]), id="refunds-as-list"),
        pytest.param(lambda c: c["refunds"]["data"][0].update(created=10**20), id="absurd-created"),
        pytest.param(lambda c: c["refunds"]["data"][0].update(reason={"x": 1}), id="reason-object"),
        pytest.param(lambda c: c["refunds"]["data"][0].update(amount="1"), id="amount-string"),
    ],
)
async def test_odd_but_signed_objects_never_500(stripe_payments: Payments, mangle: Any) -> None:
    p = stripe_payments
    assert p.fake is not None
    order = await p.paid_order()
    assert (await p.refund(order["id"], amount=5)).status_code == 200
    event = p.fake.events_of("charge.refunded")[-1]
    event = {**event, "id": event["id"] + "_odd"}
    charge = event["data"]["object"]
    mangle(charge)
    response = await p.deliver(event)
    assert response.status_code == 200, response.text
    after = await p.client.get(f"/api/orders/{order['id']}", headers=AUTH)
    assert after.status_code == 200
    assert after.json()["data"]["refundedAmount"] == 5.0


async def test_currency_mismatch_is_rejected(payments: Payments) -> None:
    order = await payments.create_order()
    response = await payments.deliver(
        _intent_event(order, "payment_intent.succeeded", currency="eur")
    )
    assert response.status_code == 200
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "pending"
    assert "currency eur differs" in ((await _errors(payments))[0].error or "")


async def test_several_v1_with_the_wrong_one_first(stripe_payments: Payments) -> None:
    from tests.fixtures.stripe_server import sign_payload

    order = await stripe_payments.create_order()
    body, _ = signed_webhook(_intent_event(order, "payment_intent.succeeded"), WEBHOOK_SECRET)
    right = sign_payload(body, WEBHOOK_SECRET)
    t, v1 = right.split(",")
    header = f"{t},v1={'ab' * 32},{v1}"
    response = await stripe_payments.client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 200
