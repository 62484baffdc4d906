"""The sandbox's client side: the checkout pages and the Stripe.js-like JSON confirm, then
the seed's two-field confirm marking the order paid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.app import AUTH, Harness
from tests.fixtures.orders import order_body
from tests.fixtures.payments import Payments

SUCCEEDING = [
    "4242424242424242",
    "pm_card_visa",
    "5555555555554444",
    "pm_card_mastercard",
    "378282246310005",
    "pm_card_amex",
    "4242 4242 4242 4242",
]
DECLINING = [
    ("4000000000000002", "generic_decline", "Your card was declined."),
    ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
    ("4000000000009995", "insufficient_funds", "Your card has insufficient funds."),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "insufficient funds"),
]
THREE_D_SECURE = ["4000002500003155", "pm_card_authenticationRequired"]


async def _order(harness: Harness, **changes: Any) -> tuple[dict[str, Any], str]:
    response = await harness.create_order(order_body(**changes))
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return data["order"], data["clientSecret"]


async def _pay(api: httpx.AsyncClient, secret: str, card: str) -> httpx.Response:
    return await api.post("/sandbox/checkout/pay", data={"client_secret": secret, "card": card})


async def _authenticate(api: httpx.AsyncClient, secret: str, outcome: str) -> httpx.Response:
    return await api.post(
        "/sandbox/checkout/authenticate", data={"client_secret": secret, "outcome": outcome}
    )


async def _confirm_json(
    api: httpx.AsyncClient, intent_id: str, secret: str, payment_method: str, *, as_json: bool
) -> httpx.Response:
    body = {"client_secret": secret, "payment_method": payment_method}
    path = f"/sandbox/v1/payment_intents/{intent_id}/confirm"
    if as_json:
        return await api.post(path, json=body)
    return await api.post(path, data=body)


async def _order_state(api: httpx.AsyncClient, order_id: str) -> tuple[str, str]:
    data = (await api.get(f"/api/orders/{order_id}", headers=AUTH)).json()["data"]
    return data["status"], data["paymentStatus"]


async def _seed_confirm(harness: Harness, order: dict[str, Any]) -> httpx.Response:
    return await harness.confirm(order, payment_method=None)


def _assert_safe_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


async def test_checkout_page_shows_items_total_and_shop_with_safe_headers(
    make_harness: Callable[..., Any],
) -> None:
    harness: Harness = await make_harness(shop_name="Acme & Sons")
    order, secret = await _order(harness)
    page = await harness.client.get(f"/sandbox/checkout/{secret}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    _assert_safe_headers(page)
    html = page.text
    assert "Acme &amp; Sons" in html
    assert "Product A" in html and "Product B" in html
    assert "29.99" in html and "59.98" in html and "109.97 USD" in html
    assert f'name="client_secret" value="{secret}"' in html
    assert 'method="post"' in html and "<script" not in html and "style=" not in html
    assert "X-RateLimit-Limit" in page.headers
    css = await harness.client.get("/sandbox/assets/sandbox.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert order["paymentStatus"] == "pending"


async def test_the_default_shop_name_and_amounts_formatted_for_the_currency(
    harness: Harness,
) -> None:
    _, secret = await _order(
        harness,
        currency="jpy",
        items=[{"id": "i", "name": "Tea", "quantity": 3, "price": 500}],
        totalAmount=1500,
    )
    html = (await harness.client.get(f"/sandbox/checkout/{secret}")).text
    assert "<h1>orderhub</h1>" in html
    assert "1500 JPY" in html and "1500.00" not in html
    _, secret = await _order(
        harness,
        currency="kwd",
        items=[{"id": "i", "name": "Tea", "quantity": 1, "price": 1.5}],
        totalAmount=1.5,
    )
    assert "1.500 KWD" in (await harness.client.get(f"/sandbox/checkout/{secret}")).text


async def test_customer_text_is_escaped_on_every_page(harness: Harness) -> None:
    evil = '<script>alert("x")</script>'
    _, secret = await _order(
        harness,
        customerName=f"Eve {evil}",
        items=[{"id": "i", "name": f"Mug {evil}", "quantity": 1, "price": 10}],
        totalAmount=10,
    )
    pages = [
        await harness.client.get(f"/sandbox/checkout/{secret}"),
        await _pay(harness.client, secret, "4000000000000002"),
        await _pay(harness.client, secret, "4000002500003155"),
        await _authenticate(harness.client, secret, "complete"),
    ]
    for page in pages:
        assert "<script" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
        _assert_safe_headers(page)


@pytest.mark.parametrize("card", SUCCEEDING)
async def test_a_succeeding_card_pays_and_the_seed_confirm_marks_the_order_paid(
    harness: Harness, card: str
) -> None:
    order, secret = await _order(harness)
    page = await _pay(harness.client, secret, card)
    assert page.status_code == 200
    assert 'data-result="paid"' in page.text and "Payment received" in page.text
    confirmed = await _seed_confirm(harness, order)
    assert confirmed.status_code == 200
    assert confirmed.json() == {
        "success": True,
        "message": "Payment confirmed successfully",
        "data": {"status": "succeeded"},
    }
    assert await _order_state(harness.client, order["id"]) == ("paid", "completed")
    # the paid page stays paid; paying again changes nothing
    again = await harness.client.get(f"/sandbox/checkout/{secret}")
    assert 'data-result="paid"' in again.text
    assert 'data-result="paid"' in (await _pay(harness.client, secret, "pm_card_visa")).text


@pytest.mark.parametrize(("card", "code", "message"), DECLINING)
async def test_a_declined_card_shows_the_reason_and_can_try_again(
    harness: Harness, card: str, code: str, message: str
) -> None:
    order, secret = await _order(harness)
    page = await _pay(harness.client, secret, card)
    assert page.status_code == 200
    assert 'data-result="declined"' in page.text
    assert message in page.text and code in page.text
    assert f'href="/sandbox/checkout/{secret}"' in page.text
    assert await _order_state(harness.client, order["id"]) == ("pending", "failed")
    retry = await harness.client.get(f"/sandbox/checkout/{secret}")
    assert 'action="/sandbox/checkout/pay"' in retry.text and message in retry.text
    paid = await _pay(harness.client, secret, "4242424242424242")
    assert 'data-result="paid"' in paid.text
    assert (await _seed_confirm(harness, order)).json()["data"] == {"status": "succeeded"}
    assert await _order_state(harness.client, order["id"]) == ("paid", "completed")


@pytest.mark.parametrize("card", THREE_D_SECURE)
async def test_3d_secure_completed_pays(harness: Harness, card: str) -> None:
    order, secret = await _order(harness)
    challenge = await _pay(harness.client, secret, card)
    assert challenge.status_code == 200
    assert "3-D Secure" in challenge.text
    assert 'value="complete"' in challenge.text and 'value="fail"' in challenge.text
    # the checkout link shows the challenge while it is open
    assert 'value="complete"' in (await harness.client.get(f"/sandbox/checkout/{secret}")).text
    pending = await _seed_confirm(harness, order)
    assert pending.json()["data"]["status"] == "requires_action"
    done = await _authenticate(harness.client, secret, "complete")
    assert 'data-result="paid"' in done.text
    assert (await _seed_confirm(harness, order)).json()["data"] == {"status": "succeeded"}
    assert await _order_state(harness.client, order["id"]) == ("paid", "completed")


async def test_3d_secure_failed_is_not_paid_and_can_try_again(harness: Harness) -> None:
    order, secret = await _order(harness)
    await _pay(harness.client, secret, "4000002500003155")
    failed = await _authenticate(harness.client, secret, "fail")
    assert 'data-result="authentication_failed"' in failed.text
    assert "Authentication failed" in failed.text and "Try again" in failed.text
    assert await _order_state(harness.client, order["id"]) == ("pending", "failed")
    seed = await _seed_confirm(harness, order)
    assert seed.json()["data"]["status"] == "requires_payment_method"
    # answering again does nothing; a new card pays
    again = await _authenticate(harness.client, secret, "complete")
    assert 'action="/sandbox/checkout/pay"' in again.text
    assert 'data-result="paid"' in (await _pay(harness.client, secret, "pm_card_visa")).text
    assert (await _seed_confirm(harness, order)).json()["data"] == {"status": "succeeded"}


async def test_an_unknown_card_is_400_on_the_form(harness: Harness) -> None:
    _, secret = await _order(harness)
    for card in ("4111111111111111", "", "pm_card_nope"):
        page = await _pay(harness.client, secret, card)
        assert page.status_code == 400
        assert "not one of the test cards" in page.text
        _assert_safe_headers(page)


async def test_a_wrong_client_secret_is_404_everywhere(harness: Harness) -> None:
    order, secret = await _order(harness)
    _other, other_secret = await _order(harness, customerId="cust_other")
    intent_id = order["paymentIntentId"]
    wrong = [
        secret + "x",
        secret[:-1] + ("a" if secret[-1] != "a" else "b"),
        f"{intent_id}_secret_",
        "nothing",
        "pi_missing_secret_abc",
    ]
    for candidate in wrong:
        page = await harness.client.get(f"/sandbox/checkout/{candidate}")
        assert page.status_code == 404, candidate
        _assert_safe_headers(page)
        assert (await _pay(harness.client, candidate, "4242424242424242")).status_code == 404
        assert (await _authenticate(harness.client, candidate, "complete")).status_code == 404
        confirm = await _confirm_json(
            harness.client, intent_id, candidate, "pm_card_visa", as_json=False
        )
        assert confirm.status_code == 404
        assert confirm.json()["error"]["code"] == "resource_missing"
    # another intent's (valid) secret does not open this intent
    crossed = await _confirm_json(
        harness.client, intent_id, other_secret, "pm_card_visa", as_json=True
    )
    assert crossed.status_code == 404
    assert await _order_state(harness.client, order["id"]) == ("pending", "pending")


@pytest.mark.parametrize("as_json", [False, True])
async def test_json_confirm_answers_stripe_shaped_intents(harness: Harness, as_json: bool) -> None:
    order, secret = await _order(harness)
    intent_id = order["paymentIntentId"]
    declined = await _confirm_json(
        harness.client,
        intent_id,
        secret,
        "pm_card_chargeDeclinedInsufficientFunds",
        as_json=as_json,
    )
    assert declined.status_code == 200
    body = declined.json()
    assert (body["object"], body["id"], body["status"]) == (
        "payment_intent",
        intent_id,
        "requires_payment_method",
    )
    error = body["last_payment_error"]
    assert (error["code"], error["decline_code"], error["type"]) == (
        "card_declined",
        "insufficient_funds",
        "card_error",
    )
    assert body["amount"] == 10997 and body["currency"] == "usd"
    assert "metadata" not in body
    _assert_safe_headers(declined)

    action = await _confirm_json(
        harness.client, intent_id, secret, "4000002500003155", as_json=as_json
    )
    assert action.json()["status"] == "requires_action"
    assert action.json()["next_action"]["type"] == "use_stripe_sdk"
    assert action.json()["last_payment_error"] is None

    paid = await _confirm_json(harness.client, intent_id, secret, "pm_card_visa", as_json=as_json)
    assert paid.status_code == 200
    assert (paid.json()["status"], paid.json()["amount_received"]) == ("succeeded", 10997)
    assert paid.json()["latest_charge"].startswith("ch_")
    assert paid.json()["next_action"] is None

    again = await _confirm_json(harness.client, intent_id, secret, "pm_card_visa", as_json=as_json)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"

    confirmed = await _seed_confirm(harness, order)
    assert confirmed.json() == {
        "success": True,
        "message": "Payment confirmed successfully",
        "data": {"status": "succeeded"},
    }
    assert await _order_state(harness.client, order["id"]) == ("paid", "completed")


async def test_json_confirm_refuses_missing_parameters_and_unknown_methods(
    harness: Harness,
) -> None:
    order, secret = await _order(harness)
    intent_id = order["paymentIntentId"]
    path = f"/sandbox/v1/payment_intents/{intent_id}/confirm"
    missing = await harness.client.post(path, data={"client_secret": secret})
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "message": "Missing required param: payment_method.",
        "param": "payment_method",
    }
    assert (await harness.client.post(path, content=b"[1]")).status_code == 400
    unknown = await _confirm_json(harness.client, intent_id, secret, "pm_nope", as_json=True)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "resource_missing"
    assert await _order_state(harness.client, order["id"]) == ("pending", "pending")


async def test_a_cancelled_order_cannot_be_paid_on_the_page(harness: Harness) -> None:
    order, secret = await _order(harness)
    cancelled = await harness.client.delete(f"/api/orders/{order['id']}", headers=AUTH)
    assert cancelled.status_code == 200
    page = await harness.client.get(f"/sandbox/checkout/{secret}")
    assert 'data-result="canceled"' in page.text
    assert 'data-result="canceled"' in (await _pay(harness.client, secret, "4242424242424242")).text


async def test_the_pages_are_rate_limited_like_the_api(make_harness: Callable[..., Any]) -> None:
    harness: Harness = await make_harness(rate_limit_max=3)
    _, secret = await _order(harness)  # one request
    assert (await harness.client.get(f"/sandbox/checkout/{secret}")).status_code == 200
    assert (await harness.client.get(f"/sandbox/checkout/{secret}")).status_code == 200
    limited = await harness.client.get(f"/sandbox/checkout/{secret}")
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers
    again = await harness.client.post(
        "/sandbox/v1/payment_intents/pi_x/confirm",
        data={"client_secret": secret, "payment_method": "pm_card_visa"},
    )
    assert again.status_code == 429


async def test_no_sandbox_pages_with_stripe(stripe_payments: Payments) -> None:
    order = await stripe_payments.create_order()
    api = stripe_payments.client
    secret = f"{order['paymentIntentId']}_secret_x"
    assert (await api.get(f"/sandbox/checkout/{secret}")).status_code == 404
    assert (await api.get("/sandbox/assets/sandbox.css")).status_code == 404
    assert (await _pay(api, secret, "4242424242424242")).status_code == 404
    confirm = await _confirm_json(
        api, order["paymentIntentId"], secret, "pm_card_visa", as_json=True
    )
    assert confirm.status_code == 404
    assert "/sandbox/checkout/{client_secret}" not in (await api.get("/openapi.json")).text
