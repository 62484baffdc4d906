"""The sandbox's intents live in the store: a real `orderhub serve`, stopped and started
again on the same data directory, still pays an order created before, and refunds and
cancels an order paid before."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.cli import cli_env, free_port, start_cli, wait_healthy
from tests.fixtures.orders import order_body

KEY = "sandbox-restart-key-123"
HEADERS = {"X-API-Key": KEY}


@contextmanager
def _serving(data_dir: Path) -> Iterator[httpx.Client]:
    port = free_port()
    env = cli_env(data_dir, API_KEYS=KEY, PORT=str(port), LOG_LEVEL="warning")
    process: subprocess.Popen[bytes] = start_cli(["serve"], env, data_dir.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base), "server did not start"
        with httpx.Client(base_url=base, timeout=10) as client:
            yield client
    finally:
        process.terminate()
        process.wait(timeout=20)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_intents_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with _serving(data_dir) as api:
        unpaid = _ok(api.post("/api/orders", json=order_body(), headers=HEADERS), 201)["data"]
        paid = _ok(
            api.post("/api/orders", json=order_body(customerId="cust_2"), headers=HEADERS), 201
        )["data"]["order"]
        confirm = {
            "orderId": paid["id"],
            "paymentIntentId": paid["paymentIntentId"],
            "paymentMethod": "pm_card_visa",
        }
        assert _ok(api.post("/api/payments/confirm", json=confirm, headers=HEADERS))["data"] == {
            "status": "succeeded"
        }

    with _serving(data_dir) as api:
        order, secret = unpaid["order"], unpaid["clientSecret"]
        intent_id = order["paymentIntentId"]
        # the provider still knows the intent, and its checkout page opens
        intent = _ok(api.get(f"/api/payments/{intent_id}", headers=HEADERS))["data"]
        assert (intent["id"], intent["status"]) == (intent_id, "requires_payment_method")
        assert api.get(f"/sandbox/checkout/{secret}").status_code == 200
        # the customer pays (Stripe.js-like confirm), then the shop confirms (two fields)
        answer = _ok(
            api.post(
                f"/sandbox/v1/payment_intents/{intent_id}/confirm",
                data={"client_secret": secret, "payment_method": "4242424242424242"},
            )
        )
        assert answer["status"] == "succeeded"
        seed = _ok(
            api.post(
                "/api/payments/confirm",
                json={"orderId": order["id"], "paymentIntentId": intent_id},
                headers=HEADERS,
            )
        )
        assert seed == {
            "success": True,
            "message": "Payment confirmed successfully",
            "data": {"status": "succeeded"},
        }
        now = _ok(api.get(f"/api/orders/{order['id']}", headers=HEADERS))["data"]
        assert (now["status"], now["paymentStatus"]) == ("paid", "completed")

        # the order paid before the restart: refunded in part, then cancelled (the rest)
        refund = _ok(
            api.post(
                "/api/payments/refund",
                json={"orderId": paid["id"], "amount": 9.97},
                headers=HEADERS,
            )
        )["data"]
        assert (refund["amount"], refund["status"]) == (997, "succeeded")
        cancelled = _ok(api.delete(f"/api/orders/{paid['id']}", headers=HEADERS))["data"]
        assert cancelled["status"] == "cancelled"
        final = _ok(api.get(f"/api/orders/{paid['id']}", headers=HEADERS))["data"]
        assert final["paymentStatus"] == "refunded"
        assert sum(r["amount"] for r in final["refunds"]) == 109.97
