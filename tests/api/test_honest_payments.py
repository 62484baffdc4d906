"""Payments that tell the truth: a refund is reported only once the provider accepted it,
DELETE cancels exactly once, amounts go to the provider in its own units, webhook refunds
stay within their own order and what was paid, and each order keeps its provider."""

from __future__ import annotations

import asyncio
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from orderhub.kit.clock import FrozenClock
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.orders import order_body
from tests.fixtures.payments import Payments, stripe_payments_with
from tests.fixtures.stripe_server import WEBHOOK_SECRET, FakeStripe, make_event


async def _mails(p: Payments) -> list[EmailMessage]:
    """Deliver what is due, then every email written so far (file backend)."""
    while await p.harness.container.worker.run_once() > 0:
        pass
    folder = p.harness.settings.data_dir / "mail"
    messages = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


async def _revenue(p: Payments) -> Any:
    response = await p.client.get(
        "/api/monitoring/metrics", params={"timeRange": "24h"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["revenue"]["total"]


async def _errors(p: Payments) -> list[Any]:
    since = p.harness.container.clock.now().replace(year=2000)
    return await p.harness.container.store.errors.recent(50, since)


# -- honest refunds ----------------------------------------------------------------------


async def test_unreachable_refund_is_502_reports_nothing_until_the_resend(
    frozen_stripe: tuple[Payments, FrozenClock],
) -> None:
    p, clock = frozen_stripe
    order = await p.paid_order()
    clock.advance(minutes=1)  # the metrics' range ends before "now"
    mails_before = len(await _mails(p))
    revenue_before = await _revenue(p)
    assert revenue_before == 109.97
    p.refunds_fail()
    response = await p.refund(order["id"], amount=1)
    assert response.status_code == 502, response.text
    after = await p.assert_order(order["id"], "paid", "completed")
    assert after["refundedAmount"] == 0.0
    assert [(r["status"], r["amount"]) for r in after["refunds"]] == [("requested", 1.0)]
    assert "order.partially_refunded" not in [h["type"] for h in after["history"]]
    assert len(await _mails(p)) == mails_before
    assert await _revenue(p) == revenue_before
    # the requested refund still holds its amount: nothing can be refunded twice
    too_much = await p.refund(order["id"], amount=109.97)
    assert too_much.status_code == 409
    assert too_much.json()["error"]["code"] == "refund_too_large"

    p.stripe.clear_faults()
    clock.advance(minutes=3)
    assert await p.resend_unsent_refunds() == 1
    assert await p.resend_unsent_refunds() == 0
    assert [r["amount"] for r in p.stripe.refunds_for(order["paymentIntentId"])] == [100]
    final = await p.get_order(order["id"])
    assert (final["paymentStatus"], final["refundedAmount"]) == ("partially_refunded", 1.0)
    assert final["refunds"][0]["status"] == "succeeded"
    mails = await _mails(p)
    refund_mails = [m for m in mails if "refund" in str(m["Subject"]).lower()]
    assert len(refund_mails) == 1
    assert "We have refunded 1.00 USD" in _text(refund_mails[0])
    assert len(mails) == mails_before + 1
    assert await _revenue(p) == pytest.approx(revenue_before - 1)


async def test_refused_refund_is_409_with_the_reason_and_frees_its_amount(
    stripe_payments: Payments,
) -> None:
    p = stripe_payments
    assert p.fake is not None
    order = await p.paid_order()
    p.fake.fail_next(
        status=400,
        path_prefix="/v1/refunds",
        code="charge_already_refunded",
        error_type="invalid_request_error",
        message="Charge ch_x has already been refunded.",
    )
    response = await p.refund(order["id"], amount=100)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "refund_failed"
    assert "has already been refunded" in error["message"]
    after = await p.get_order(order["id"])
    assert [r["status"] for r in after["refunds"]] == ["failed"]
    assert (after["paymentStatus"], after["refundedAmount"]) == ("completed", 0.0)
    # the whole amount is free again
    assert (await p.refund(order["id"])).status_code == 200
    assert (await p.get_order(order["id"]))["refundedAmount"] == 109.97


# -- DELETE ------------------------------------------------------------------------------


@pytest.mark.parametrize("paid", [False, True], ids=["pending", "paid"])
async def test_concurrent_deletes_one_200_the_rest_409(payments: Payments, paid: bool) -> None:
    order = await (payments.paid_order() if paid else payments.create_order())
    url = f"/api/orders/{order['id']}"
    responses = await asyncio.gather(*(payments.client.delete(url, headers=AUTH) for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409], [
        r.text for r in responses
    ]
    final = await payments.get_order(order["id"])
    assert final["status"] == "cancelled"
    assert [h["type"] for h in final["history"]].count("order.cancelled") == 1
    if paid:
        assert [r["amount"] for r in final["refunds"]] == [109.97]
        if payments.fake is not None:
            refunds = payments.fake.refunds_for(order["paymentIntentId"])
            assert [r["amount"] for r in refunds] == [10997]


async def test_delete_retried_with_the_same_key_replays(payments: Payments) -> None:
    order = await payments.paid_order()
    url = f"/api/orders/{order['id']}"
    headers = {**AUTH, "Idempotency-Key": "cancel-once"}
    first = await payments.client.delete(url, headers=headers)
    again = await payments.client.delete(url, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await payments.client.delete(url, headers=AUTH)).status_code == 409


async def test_cancellation_emails_tell_the_truth(
    frozen_stripe: tuple[Payments, FrozenClock],
) -> None:
    p, clock = frozen_stripe
    unpaid = await p.create_order()
    paid = await p.paid_order()
    assert (await p.cancel(unpaid["id"])).status_code == 200
    p.refunds_fail()
    assert (await p.cancel(paid["id"])).status_code == 200

    def cancelled_mail(mails: list[EmailMessage], order_id: str) -> str:
        # the subject's reference is the id's first 8 characters; the body has all of it
        subject = f"Order {order_id[-8:]} cancelled"
        [text] = [_text(m) for m in mails if str(m["Subject"]) == subject and order_id in _text(m)]
        return text

    mails = await _mails(p)
    assert "refund" not in cancelled_mail(mails, unpaid["id"]).lower()
    assert "A refund of 109.97 USD is on its way" in cancelled_mail(mails, paid["id"])
    assert not [m for m in mails if str(m["Subject"]).startswith("Refund for")]
    p.stripe.clear_faults()
    clock.advance(minutes=3)
    assert await p.resend_unsent_refunds() == 1
    mails = await _mails(p)
    assert len([m for m in mails if str(m["Subject"]).startswith("Refund for")]) == 1


# -- provider units ----------------------------------------------------------------------


def _single_item(currency: str, price: Any) -> dict[str, Any]:
    return order_body(
        currency=currency,
        items=[{"id": "item_1", "name": "Thing", "quantity": 1, "price": price}],
        totalAmount=price,
    )


async def test_isk_goes_to_stripe_in_hundredths(stripe_payments: Payments) -> None:
    p = stripe_payments
    assert p.fake is not None
    created = await p.harness.create_order(_single_item("isk", 500))
    assert created.status_code == 201, created.text
    order = created.json()["data"]["order"]
    assert p.fake.get_intent(order["paymentIntentId"])["amount"] == 50_000
    assert (await p.confirm(order)).status_code == 200
    assert (await p.get_order(order["id"]))["paymentStatus"] == "completed"
    intent = await p.client.get(f"/api/payments/{order['paymentIntentId']}", headers=AUTH)
    assert intent.json()["data"]["amount"] == 50_000
    refund = await p.refund(order["id"], amount=100)
    assert refund.status_code == 200, refund.text
    assert refund.json()["data"]["amount"] == 10_000
    assert [r["amount"] for r in p.fake.refunds_for(order["paymentIntentId"])] == [10_000]
    after = await p.get_order(order["id"])
    assert (after["refundedAmount"], after["paymentStatus"]) == (100, "partially_refunded")
    # the webhook for that refund is read back in krónur, and counted once
    for event in p.fake.events_of("charge.refunded"):
        assert (await p.deliver(event)).status_code == 200
    assert (await p.get_order(order["id"]))["refundedAmount"] == 100


async def test_mga_goes_to_the_provider_in_whole_ariary(payments: Payments) -> None:
    created = await payments.harness.create_order(_single_item("mga", 500))
    assert created.status_code == 201, created.text
    order = created.json()["data"]["order"]
    intent = await payments.client.get(f"/api/payments/{order['paymentIntentId']}", headers=AUTH)
    assert intent.json()["data"]["amount"] == 500
    if payments.fake is not None:
        assert payments.fake.get_intent(order["paymentIntentId"])["amount"] == 500


@pytest.mark.parametrize(("currency", "price"), [("kwd", 1.234), ("mga", 500.5)])
async def test_amount_the_provider_cannot_charge_is_400(
    payments: Payments, currency: str, price: Any
) -> None:
    response = await payments.harness.create_order(_single_item(currency, price))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("Validation error: totalAmount")


# -- webhook refunds -----------------------------------------------------------------------


def _charge_refunded(order: dict[str, Any], refunds: list[dict[str, Any]]) -> dict[str, Any]:
    return make_event(
        "charge.refunded",
        {
            "id": "ch_test",
            "object": "charge",
            "amount": 10997,
            "currency": "usd",
            "payment_intent": order["paymentIntentId"],
            "refunds": {"object": "list", "data": refunds, "has_more": False},
        },
    )


def _refund(refund_id: str, intent_id: str, amount: int = 10997) -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "payment_intent": intent_id,
        "status": "succeeded",
        "created": int(time.time()),
        "metadata": {},
    }


async def test_three_listed_full_refunds_never_exceed_the_payment(
    stripe_payments: Payments,
) -> None:
    p = stripe_payments
    order = await p.paid_order()
    pi = order["paymentIntentId"]
    same = _charge_refunded(order, [_refund("re_1", pi)] * 3)
    assert (await p.deliver(same)).status_code == 200
    after = await p.get_order(order["id"])
    assert (after["refundedAmount"], len(after["refunds"])) == (109.97, 1)
    distinct = _charge_refunded(order, [_refund(f"re_{n}", pi) for n in (1, 2, 3)])
    assert (await p.deliver(distinct)).status_code == 200
    final = await p.get_order(order["id"])
    assert (final["refundedAmount"], len(final["refunds"])) == (109.97, 1)
    assert final["paymentStatus"] == "refunded"
    [error] = [e for e in await _errors(p) if "more than was paid" in str(e.error)]
    assert "re_2" in str(error.error) and "re_3" in str(error.error)


async def test_refund_naming_another_intent_is_not_applied_to_it(
    stripe_payments: Payments,
) -> None:
    p = stripe_payments
    mine = await p.paid_order()
    theirs = await p.paid_order()
    event = _charge_refunded(mine, [_refund("re_foreign", theirs["paymentIntentId"], 500)])
    assert (await p.deliver(event)).status_code == 200
    for order in (mine, theirs):
        after = await p.get_order(order["id"])
        assert (after["refundedAmount"], after["refunds"]) == (0.0, [])
    errors = [e for e in await _errors(p) if "re_foreign" in str(e.error)]
    assert len(errors) == 1


async def test_signature_from_the_future_is_400(stripe_payments: Payments) -> None:
    p = stripe_payments
    order = await p.create_order()
    event = make_event(
        "payment_intent.succeeded",
        {
            "id": order["paymentIntentId"],
            "object": "payment_intent",
            "amount": 10997,
            "currency": "usd",
            "status": "succeeded",
        },
    )
    for offset in (3600, 301):
        response = await p.deliver(event, timestamp=int(time.time()) + offset)
        assert response.status_code == 400, response.text
    assert (await p.get_order(order["id"]))["paymentStatus"] == "pending"
    assert (await p.deliver(event, timestamp=int(time.time()) + 60)).status_code == 200


# -- each order keeps its provider -----------------------------------------------------------


async def _paid_on_stripe(
    make_harness: Any, fake_stripe: FakeStripe, database_url: str
) -> dict[str, Any]:
    """An order paid through Stripe, kept in the store at `database_url`."""
    before = await stripe_payments_with(
        make_harness, fake_stripe, stripe_webhook_secret=WEBHOOK_SECRET, database_url=database_url
    )
    return await before.paid_order()


async def test_an_old_orders_refund_goes_to_its_own_provider(
    make_harness: Any, fake_stripe: FakeStripe, tmp_path: Any
) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    order = await _paid_on_stripe(make_harness, fake_stripe, database_url)
    # PAYMENT_PROVIDER changes to the sandbox; Stripe's key is still configured
    after: Harness = await make_harness(
        payment_provider="sandbox",
        stripe_secret_key=fake_stripe.api_key,
        stripe_api_base=fake_stripe.url,
        database_url=database_url,
    )
    p = Payments(after, "sandbox", None)
    response = await p.refund(order["id"], amount=1)
    assert response.status_code == 200, response.text
    assert [r["amount"] for r in fake_stripe.refunds_for(order["paymentIntentId"])] == [100]
    new = await p.create_order()
    assert new["paymentIntentId"] not in {i["id"] for i in fake_stripe.intents()}


async def test_an_old_orders_provider_that_is_gone_fails_clearly(
    make_harness: Any, fake_stripe: FakeStripe, tmp_path: Any
) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    order = await _paid_on_stripe(make_harness, fake_stripe, database_url)
    after: Harness = await make_harness(payment_provider="sandbox", database_url=database_url)
    p = Payments(after, "sandbox", None)
    for response in (
        await p.refund(order["id"], amount=1),
        await p.cancel(order["id"]),
        await p.confirm(order, None),
        await p.client.get(f"/api/payments/{order['paymentIntentId']}", headers=AUTH),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "payment_provider_unavailable"
    unchanged = await p.get_order(order["id"])
    assert (unchanged["status"], unchanged["refunds"]) == ("paid", [])
    assert fake_stripe.refunds_for(order["paymentIntentId"]) == []
    assert [e for e in await _errors(p) if "not configured" in str(e.error)]
