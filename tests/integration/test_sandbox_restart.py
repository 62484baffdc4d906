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

from tests.fixtures.cli import cli_env, free_port, run_cli, start_cli, wait_healthy
from tests.fixtures.orders import order_body

KEY = "sandbox-restart-key-123"
HEADERS = {"X-API-Key": KEY}


@contextmanager
def _serving(data_dir: Path, *args: str, **settings: str) -> Iterator[httpx.Client]:
    port = free_port()
    env = cli_env(data_dir, API_KEYS=KEY, PORT=str(port), LOG_LEVEL="warning", **settings)
    process: subprocess.Popen[bytes] = start_cli(["serve", *args], env, data_dir.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base), "server did not start"
        # a fresh connection per request, so that several worker processes answer
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, timeout=10, limits=limits) as client:
            yield client
    finally:
        process.terminate()
        process.wait(timeout=20)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _shop_confirms(api: httpx.Client, order: dict[str, Any]) -> Any:
    """The seed's two-field confirm, after the customer paid on the checkout page."""
    body = {"orderId": order["id"], "paymentIntentId": order["paymentIntentId"]}
    return _ok(api.post("/api/payments/confirm", json=body, headers=HEADERS))


def _paid_and_confirmed(api: httpx.Client, order: dict[str, Any], **body: Any) -> Any:
    """The customer confirms the order's intent on the sandbox with `body` (form or JSON,
    as Stripe.js sends it), it succeeds; then `_shop_confirms`."""
    intent_id = order["paymentIntentId"]
    paid = _ok(api.post(f"/sandbox/v1/payment_intents/{intent_id}/confirm", **body))
    assert paid["status"] == "succeeded"
    return _shop_confirms(api, order)


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
        seed = _paid_and_confirmed(
            api, order, data={"client_secret": secret, "payment_method": "4242424242424242"}
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


def test_every_worker_process_sees_the_same_intents(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    """`serve --workers 2` on PostgreSQL: whichever process answers, it knows the intent."""
    data_dir = tmp_path / "data"
    migrated = run_cli(["migrate"], cli_env(data_dir, DATABASE_URL=empty_postgres_url), tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    with _serving(data_dir, "--workers", "2", DATABASE_URL=empty_postgres_url) as api:
        for n in range(8):
            created = _ok(
                api.post("/api/orders", json=order_body(customerId=f"c{n}"), headers=HEADERS),
                201,
            )["data"]
            order, secret = created["order"], created["clientSecret"]
            intent_id = order["paymentIntentId"]
            assert api.get(f"/sandbox/checkout/{secret}").status_code == 200
            assert _ok(api.get(f"/api/payments/{intent_id}", headers=HEADERS))["success"]
            seed = _paid_and_confirmed(
                api, order, json={"client_secret": secret, "payment_method": "pm_card_visa"}
            )
            assert seed["data"] == {"status": "succeeded"}
            refund = _ok(
                api.post("/api/payments/refund", json={"orderId": order["id"]}, headers=HEADERS)
            )
            assert refund["data"]["amount"] == 10997
