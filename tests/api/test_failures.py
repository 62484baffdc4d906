"""Failures are visible and enveloped: unhandled errors, a store that does not answer,
and a provider that reports success while the order still looks pending."""

from __future__ import annotations

from typing import Any

from orderhub.store.protocol import StoreError
from tests.fixtures.app import AUTH, Harness


class Exploding:
    async def get(self, order_id: str) -> Any:
        raise RuntimeError("boom: SELECT secret FROM somewhere")


async def test_unhandled_error_is_a_500_envelope_with_request_id(harness: Harness) -> None:
    harness.container.orders = Exploding()  # type: ignore[assignment]
    response = await harness.client.get(
        "/api/orders/0192f0c4-5b7e-7cc3-9a40-4f1d2e3c4b5a",
        headers={**AUTH, "X-Request-ID": "req-123"},
    )
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": {"message": "Internal server error", "code": "internal_error"},
    }
    assert response.headers["X-Request-ID"] == "req-123"
    assert "boom" not in response.text and "SELECT" not in response.text


async def test_store_down_is_503_and_not_ready(harness: Harness) -> None:
    async def down(*_args: Any, **_kwargs: Any) -> None:
        raise StoreError("store did not answer")

    harness.container.store.ping = down  # type: ignore[method-assign]
    ready = await harness.client.get("/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable"}

    def no_unit_of_work(**_kwargs: Any) -> Any:
        raise StoreError("store did not answer")

    harness.container.store.unit_of_work = no_unit_of_work  # type: ignore[method-assign]
    response = await harness.client.get("/api/orders", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "store_unavailable"


async def test_cancel_when_the_provider_says_the_payment_succeeded_refunds_it(
    harness: Harness,
) -> None:
    created = (await harness.create_order()).json()["data"]["order"]
    sandbox: Any = harness.container.payments
    await sandbox.mark_succeeded(created["paymentIntentId"])
    response = await harness.client.delete(f"/api/orders/{created['id']}", headers=AUTH)
    assert response.status_code == 200, response.text
    order = (await harness.client.get(f"/api/orders/{created['id']}", headers=AUTH)).json()["data"]
    assert order["status"] == "cancelled"
    assert order["paymentStatus"] == "refunded"
    assert order["paidAt"] is not None and order["cancelledAt"] is not None
    assert order["refundedAmount"] == 109.97
    assert [r["amount"] for r in order["refunds"]] == [109.97]
    assert [h["type"] for h in order["history"]] == [
        "order.created",
        "order.paid",
        "order.cancelled",
        "order.refunded",
    ]
