"""Attacks and crashes from the hardening review, each through the real ASGI app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.fixtures.app import AUTH, Harness
from tests.fixtures.orders import order_body
from tests.fixtures.payments import Payments
from tests.fixtures.stripe_server import WEBHOOK_SECRET, sign_payload

DEEP = (320, 979, 5000, 100_000)


def _nested(depth: int) -> bytes:
    return b'{"customerId": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", DEEP)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/orders"),
        ("POST", "/api/payments/refund"),
        ("POST", "/api/payments/confirm"),
        ("PATCH", "/api/orders/00000000-0000-7000-8000-000000000000"),
    ],
)
async def test_deep_json_is_a_400_in_the_envelope(
    harness: Harness, method: str, path: str, depth: int
) -> None:
    response = await harness.client.request(
        method,
        path,
        content=_nested(depth),
        headers={**AUTH, "Content-Type": "application/json", "Idempotency-Key": f"d{depth}"},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"] == {
        "message": "Malformed JSON in request body",
        "code": "malformed_json",
    }


async def test_a_signed_deep_webhook_is_a_400(stripe_payments: Payments) -> None:
    payload = b'{"id": "evt_deep", "type": "x", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await stripe_payments.client.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)},
    )
    assert response.status_code == 400
    assert response.json()["success"] is False


async def test_brackets_inside_strings_do_not_count(harness: Harness) -> None:
    body = order_body(customerName="[" * 150 + "{" * 40)
    response = await harness.create_order(body)
    assert response.status_code == 201, response.text


async def test_equal_numbers_are_the_same_request(harness: Harness) -> None:
    body = order_body()
    first = await harness.create_order(body, **{"Idempotency-Key": "num"})
    assert first.status_code == 201
    raw = first.request.content.decode()
    total = str(body["totalAmount"])
    padded = raw.replace(f'"totalAmount":{total}', f'"totalAmount":{total}0').replace(
        f'"totalAmount": {total}', f'"totalAmount": {total}0'
    )
    assert padded != raw
    again = await harness.client.post(
        "/api/orders",
        content=padded,
        headers={**AUTH, "Content-Type": "application/json", "Idempotency-Key": "num"},
    )
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()


SECRET = "s" * 32


def _bearer(issuer: str, subject: str) -> dict[str, str]:
    token = jwt.encode({"iss": issuer, "sub": subject, "exp": 4_000_000_000}, SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


async def test_jwt_callers_never_share_idempotency_keys(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(jwt_secret=SECRET)
    first = await h.client.post(
        "/api/orders",
        json=order_body(),
        headers={**_bearer("a:b", "c"), "Idempotency-Key": "shared"},
    )
    second = await h.client.post(
        "/api/orders",
        json=order_body(),
        headers={**_bearer("a", "b:c"), "Idempotency-Key": "shared"},
    )
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["data"]["order"]["id"] != first.json()["data"]["order"]["id"]
    assert second.json()["data"]["clientSecret"] != first.json()["data"]["clientSecret"]


# the rule is the service's, whatever the provider; 100 refunds take minutes on moto
@pytest.mark.timeout(900)
@pytest.mark.parametrize("payments", ["sandbox"], indirect=True)
async def test_an_order_takes_at_most_100_requested_refunds_and_then_the_rest_in_one(
    payments: Payments,
) -> None:
    """Each event keeps the order as it was, so refunds are capped per order (storage
    stays bounded); what is left can still be refunded in one."""
    order = await payments.paid_order()
    for _ in range(100):
        response = await payments.refund(order["id"], amount=0.01)
        assert response.status_code == 200, response.text
    refused = await payments.refund(order["id"], amount=0.01)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "too_many_refunds"
    stored = await payments.get_order(order["id"])
    assert len(stored["refunds"]) == 100 and stored["refundedAmount"] == 1.0
    rest = await payments.refund(order["id"])  # what is left, in one
    assert rest.status_code == 200, rest.text
    final = await payments.get_order(order["id"])
    assert final["paymentStatus"] == "refunded" and len(final["refunds"]) == 101


async def test_a_stripe_failure_is_told_in_words_in_the_error_log(
    stripe_payments: Payments,
) -> None:
    assert stripe_payments.fake is not None
    stripe_payments.fake.fail_next(status=500, count=10, path_prefix="/v1/payment_intents")
    response = await stripe_payments.harness.create_order()
    assert response.status_code == 502
    logged = await stripe_payments.client.get("/api/monitoring/errors", headers=AUTH)
    (entry,) = logged.json()["data"]["errors"]
    assert entry["error"].startswith("Stripe answered HTTP 500"), entry
    assert "Error" not in entry["error"].split(":")[0]
