"""SPEC §8 through the API, for the sandbox and for Stripe (real SDK, local Stripe server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orderhub.kit.clock import FrozenClock
from tests.fixtures.app import AUTH
from tests.fixtures.payments import Payments, stripe_payments_with

SEED_TOTAL = 109.97


async def test_confirm_gives_the_seed_response_and_pays_the_order(payments: Payments) -> None:
    order = await payments.create_order()
    response = await payments.confirm(order)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "message": "Payment confirmed successfully",
        "data": {"status": "succeeded"},
    }
    paid = await payments.assert_order(
        order["id"], "paid", "completed", ["order.created", "order.paid"]
    )
    assert paid["paidAt"] is not None
    # confirming again changes nothing
    again = await payments.confirm(order, payment_method=None)
    assert again.json()["data"] == {"status": "succeeded"}
    assert len((await payments.get_order(order["id"]))["history"]) == 2


async def test_declined_card_then_a_good_card(payments: Payments) -> None:
    order = await payments.create_order()
    declined = await payments.confirm(order, "pm_card_chargeDeclined")
    assert declined.status_code == 402
    assert declined.json()["success"] is False
    assert declined.json()["error"]["code"] == "card_declined"
    await payments.assert_order(order["id"], "pending", "failed")
    good = await payments.confirm(order, "pm_card_visa")
    assert good.status_code == 200, good.text
    await payments.assert_order(
        order["id"], "paid", "completed", ["order.created", "order.payment_failed", "order.paid"]
    )


async def test_3d_secure_is_200_with_next_action(payments: Payments) -> None:
    order = await payments.create_order()
    response = await payments.confirm(order, "pm_card_authenticationRequired")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "requires_action"
    assert data["nextAction"]["type"] == "use_stripe_sdk"
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "pending"


async def test_confirm_without_payment_method_reads_the_real_status(payments: Payments) -> None:
    order = await payments.create_order()
    first = await payments.confirm(order, payment_method=None)
    assert first.status_code == 200
    assert first.json()["data"]["status"] == "requires_payment_method"
    await payments.succeed_at_provider(order["paymentIntentId"])
    second = await payments.confirm(order, payment_method=None)
    assert second.json()["data"]["status"] == "succeeded"
    assert (await payments.get_order(order["id"]))["status"] == "paid"


async def test_confirm_with_another_orders_intent_is_400(payments: Payments) -> None:
    mine = await payments.create_order()
    theirs = await payments.create_order()
    response = await payments.client.post(
        "/api/payments/confirm",
        json={"paymentIntentId": theirs["paymentIntentId"], "orderId": mine["id"]},
        headers=AUTH,
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Validation error: paymentIntentId does not belong to this order"
    )
    assert (await payments.get_order(theirs["id"]))["paymentStatus"] == "pending"


async def test_confirm_unknown_order_is_404(payments: Payments) -> None:
    response = await payments.client.post(
        "/api/payments/confirm",
        json={"paymentIntentId": "pi_x", "orderId": "0192f0c4-5b7e-7cc3-9a40-4f1d2e3c4b5a"},
        headers=AUTH,
    )
    assert response.status_code == 404


async def test_full_refund_gives_the_seed_response(payments: Payments) -> None:
    order = await payments.paid_order()
    response = await payments.refund(order["id"], amount=SEED_TOTAL, reason="requested_by_customer")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Refund processed successfully"
    data = body["data"]
    assert data["id"].startswith("re_")
    assert data["amount"] == 10997
    assert data["status"] == "succeeded"
    assert isinstance(data["created"], int)
    refunded = await payments.assert_order(order["id"], "refunded", "refunded")
    assert refunded["refundedAmount"] == SEED_TOTAL
    assert refunded["refunds"][0]["id"] == data["id"]
    assert refunded["refunds"][0]["reason"] == "requested_by_customer"


async def test_partial_then_the_rest(payments: Payments) -> None:
    order = await payments.paid_order()
    first = await payments.refund(order["id"], amount=9.97)
    assert first.status_code == 200, first.text
    assert first.json()["data"]["amount"] == 997
    partial = await payments.assert_order(order["id"], "paid", "partially_refunded")
    assert partial["refundedAmount"] == 9.97
    rest = await payments.refund(order["id"])
    assert rest.status_code == 200, rest.text
    assert rest.json()["data"]["amount"] == 10000
    done = await payments.assert_order(order["id"], "refunded", "refunded")
    assert [r["amount"] for r in done["refunds"]] == [9.97, 100.0]
    assert [h["type"] for h in done["history"]][-2:] == [
        "order.partially_refunded",
        "order.refunded",
    ]
    assert (await payments.refund(order["id"], amount=1)).status_code == 409


async def test_refund_rules(payments: Payments) -> None:
    unpaid = await payments.create_order()
    response = await payments.refund(unpaid["id"], amount=1)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_not_paid"
    order = await payments.paid_order()
    over = await payments.refund(order["id"], amount=109.98)
    assert over.status_code == 409
    for bad in ({"amount": 0}, {"amount": -1}, {"amount": 1.001}, {"amount": "1"}):
        assert (await payments.refund(order["id"], **bad)).status_code == 400, bad
    reason = await payments.refund(order["id"], reason="changed_my_mind")
    assert reason.status_code == 400
    assert (await payments.refund("0192f0c4-5b7e-7cc3-9a40-4f1d2e3c4b5a")).status_code == 404
    untouched = await payments.get_order(order["id"])
    assert untouched["refunds"] == [] and untouched["paymentStatus"] == "completed"


async def test_two_equal_partial_refunds_stay_two(payments: Payments) -> None:
    order = await payments.paid_order()
    one = await payments.refund(order["id"], amount=5)
    two = await payments.refund(order["id"], amount=5)
    assert one.status_code == two.status_code == 200
    assert one.json()["data"]["id"] != two.json()["data"]["id"]
    assert (await payments.get_order(order["id"]))["refundedAmount"] == 10.0


async def test_refund_retried_with_the_same_key_refunds_once(payments: Payments) -> None:
    order = await payments.paid_order()
    headers = {"Idempotency-Key": "refund-1"}
    first = await payments.refund(order["id"], amount=5, headers=headers)
    second = await payments.refund(order["id"], amount=5, headers=headers)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert (await payments.get_order(order["id"]))["refundedAmount"] == 5.0
    if payments.fake is not None:
        assert len(payments.fake.refunds_for(order["paymentIntentId"])) == 1


async def test_fifty_concurrent_refunds_never_exceed_the_payment(payments: Payments) -> None:
    order = await payments.paid_order(
        items=[{"id": "i", "name": "Ten", "quantity": 1, "price": 10}], totalAmount=10
    )
    responses = await asyncio.gather(*(payments.refund(order["id"], amount=1) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(409) == 40, statuses
    final = await payments.get_order(order["id"])
    assert final["refundedAmount"] == 10.0
    assert final["paymentStatus"] == "refunded"
    assert len(final["refunds"]) == 10
    if payments.fake is not None:
        assert sum(r["amount"] for r in payments.fake.refunds_for(order["paymentIntentId"])) == 1000


async def test_get_payment_seed_shape(payments: Payments) -> None:
    order = await payments.paid_order()
    response = await payments.client.get(f"/api/payments/{order['paymentIntentId']}", headers=AUTH)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data == {
        "id": order["paymentIntentId"],
        "amount": 10997,
        "currency": "usd",
        "status": "succeeded",
        "created": data["created"],
        "metadata": {"orderId": order["id"]},
    }
    assert isinstance(data["created"], int)
    missing = await payments.client.get("/api/payments/pi_doesnotexist", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["success"] is False


async def test_delete_cancels_a_pending_intent_at_the_provider(payments: Payments) -> None:
    order = await payments.create_order()
    response = await payments.cancel(order["id"])
    assert response.status_code == 200
    intent = await payments.client.get(f"/api/payments/{order['paymentIntentId']}", headers=AUTH)
    assert intent.json()["data"]["status"] == "canceled"
    await payments.assert_order(order["id"], "cancelled", "cancelled")


async def test_delete_of_a_paid_order_refunds_what_is_left(payments: Payments) -> None:
    order = await payments.paid_order()
    assert (await payments.refund(order["id"], amount=9.97)).status_code == 200
    response = await payments.cancel(order["id"])
    assert response.status_code == 200, response.text
    final = await payments.assert_order(order["id"], "cancelled", "refunded")
    assert [r["amount"] for r in final["refunds"]] == [9.97, 100.0]
    assert all(r["id"].startswith("re_") for r in final["refunds"])


async def test_delete_when_the_payment_already_succeeded_refunds_instead(
    payments: Payments,
) -> None:
    order = await payments.create_order()
    await payments.succeed_at_provider(order["paymentIntentId"])
    response = await payments.cancel(order["id"])
    assert response.status_code == 200, response.text
    final = await payments.assert_order(order["id"], "cancelled", "refunded")
    assert final["refundedAmount"] == SEED_TOTAL


async def _provider_failure(payments: Payments) -> Any:
    """Make the next intent creation fail as an unreachable provider would."""
    if payments.fake is not None:
        payments.fake.fail_next(status=500, count=10, path_prefix="/v1/payment_intents")
        return None

    class Unreachable(Exception):
        pass

    from orderhub.payments.provider import ProviderError

    real = payments.harness.container.payments
    original = real.create_intent

    async def failing(**_kwargs: Any) -> Any:
        raise ProviderError("connection refused")

    real.create_intent = failing  # type: ignore[method-assign]
    return original


async def test_provider_failure_on_create_is_502_stores_nothing_and_is_recorded(
    payments: Payments,
) -> None:
    original = await _provider_failure(payments)
    response = await payments.harness.create_order(**{"Idempotency-Key": "create-1"})
    assert response.status_code == 502
    assert response.json()["success"] is False
    listed = await payments.client.get("/api/orders", headers=AUTH)
    assert listed.json()["data"] == []
    errors = await payments.harness.container.store.errors.recent(
        10, payments.harness.container.clock.now().replace(year=2000)
    )
    assert [(e.service, e.message) for e in errors] == [
        ("orderService", "Failed to create the payment intent")
    ]
    if payments.fake is not None:
        payments.fake.clear_faults()
    else:
        payments.harness.container.payments.create_intent = original  # type: ignore[method-assign]
    retried = await payments.harness.create_order(**{"Idempotency-Key": "create-1"})
    assert retried.status_code == 201, retried.text


async def test_retry_after_a_provider_timeout_makes_one_intent(
    make_harness: Any, fake_stripe: Any
) -> None:
    fake = fake_stripe
    stripe_payments = await stripe_payments_with(make_harness, fake, stripe_timeout_seconds=0.5)
    # The provider creates the intent but the answer never arrives, on every SDK attempt.
    fake.timeout_next(3, count=3, path_prefix="/v1/payment_intents", applied=True)
    first = await stripe_payments.harness.create_order(**{"Idempotency-Key": "slow-1"})
    assert first.status_code == 502
    fake.clear_faults()
    retried = await stripe_payments.harness.create_order(**{"Idempotency-Key": "slow-1"})
    assert retried.status_code == 201, retried.text
    assert len(fake.intents()) == 1
    assert retried.json()["data"]["order"]["paymentIntentId"] == fake.intents()[0]["id"]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"kind": "fail", "status": 500}, id="500"),
        pytest.param({"kind": "fail", "status": 429, "code": "lock_timeout"}, id="429-retryable"),
        pytest.param({"kind": "reset", "applied": True}, id="reset-after-applying"),
        pytest.param({"kind": "timeout", "applied": True}, id="timeout-after-applying"),
    ],
)
async def test_refund_through_a_flaky_provider_refunds_exactly_once(
    make_harness: Any, fake_stripe: Any, fault: dict[str, Any]
) -> None:
    p = await stripe_payments_with(make_harness, fake_stripe, stripe_timeout_seconds=0.5)
    order = await p.paid_order()
    kind = fault.pop("kind")
    if kind == "fail":
        fake_stripe.fail_next(path_prefix="/v1/refunds", **fault)
    elif kind == "reset":
        fake_stripe.reset_next(path_prefix="/v1/refunds", **fault)
    else:
        fake_stripe.timeout_next(2, path_prefix="/v1/refunds", **fault)
    response = await p.refund(order["id"], amount=5)
    assert response.status_code == 200, response.text
    assert [r["amount"] for r in fake_stripe.refunds_for(order["paymentIntentId"])] == [500]
    assert (await p.get_order(order["id"]))["refundedAmount"] == 5.0


async def test_declined_then_3d_secure_is_pending_again(payments: Payments) -> None:
    order = await payments.create_order()
    assert (await payments.confirm(order, "pm_card_chargeDeclined")).status_code == 402
    again = await payments.confirm(order, "pm_card_authenticationRequired")
    assert again.json()["data"]["status"] == "requires_action"
    assert (await payments.get_order(order["id"]))["paymentStatus"] == "pending"


async def test_bad_refund_amount_is_400_whatever_the_order_state(payments: Payments) -> None:
    unpaid = await payments.create_order()
    response = await payments.refund(unpaid["id"], amount=1.001)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Validation error: amount")


async def test_delete_with_the_provider_down_is_200_and_the_worker_sends_the_refund(
    frozen_stripe: tuple[Payments, FrozenClock],
) -> None:
    p, clock = frozen_stripe
    order = await p.paid_order()
    p.refunds_fail()
    cancelled = await p.cancel(order["id"])
    assert cancelled.status_code == 200, cancelled.text
    data = cancelled.json()["data"]
    assert (data["status"], data["paymentStatus"]) == ("cancelled", "completed")
    assert [(r["status"], r["amount"]) for r in data["refunds"]] == [("requested", 109.97)]
    assert data["refundedAmount"] == 0.0
    assert p.stripe.refunds_for(order["paymentIntentId"]) == []
    # cancelled once: a second DELETE is a conflict, not a second refund
    assert (await p.cancel(order["id"])).status_code == 409
    p.stripe.clear_faults()
    clock.advance(minutes=3)
    assert await p.resend_unsent_refunds() == 1
    assert await p.resend_unsent_refunds() == 0
    assert [r["amount"] for r in p.stripe.refunds_for(order["paymentIntentId"])] == [10997]
    final = await p.assert_order(order["id"], "cancelled", "refunded")
    assert [h["type"] for h in final["history"]][-2:] == ["order.cancelled", "order.refunded"]


async def test_unacknowledged_refunds_are_sent_by_the_worker_later(
    frozen_stripe: tuple[Payments, FrozenClock],
) -> None:
    p, clock = frozen_stripe
    cancelled = await p.paid_order()
    partly = await p.paid_order()
    p.refunds_fail(20)
    assert (await p.cancel(cancelled["id"])).status_code == 200
    assert (await p.refund(partly["id"], amount=5)).status_code == 502
    # too recent: a request may still be waiting on the provider
    assert await p.resend_unsent_refunds() == 0
    clock.advance(minutes=3)
    # still unreachable: nothing acknowledged, nothing lost
    assert await p.resend_unsent_refunds() == 0
    p.stripe.clear_faults()
    assert await p.resend_unsent_refunds() == 2
    assert await p.resend_unsent_refunds() == 0
    assert [r["amount"] for r in p.stripe.refunds_for(cancelled["paymentIntentId"])] == [10997]
    assert [r["amount"] for r in p.stripe.refunds_for(partly["paymentIntentId"])] == [500]
    assert (await p.get_order(cancelled["id"]))["paymentStatus"] == "refunded"
    assert (await p.get_order(partly["id"]))["refunds"][0]["status"] == "succeeded"
