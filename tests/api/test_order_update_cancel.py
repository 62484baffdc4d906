"""SPEC §7 through the real app: PATCH moves and edits, DELETE cancels (and refunds), and
the history every change leaves behind. Payments that the API cannot make yet are
recorded directly through the container, as a payment event would."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from orderhub.orders.domain import EventSource
from orderhub.payments.provider import IntentStatus
from orderhub.payments.sandbox import SandboxPaymentProvider
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.envelopes import assert_error
from tests.fixtures.orders import ADDRESS, history_entry, order_body

ORDERS = "/api/orders"
# the ways to an order that has left the warehouse
SHIPPED_PATHS = [["shipped"], ["shipped", "delivered"]]
ISO_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NEW_ADDRESS = {
    "street": "1 Infinite Loop",
    "city": "Cupertino",
    "state": "CA",
    "zipCode": "95014",
    "country": "USA",
}
STATUS_CHOICES = (
    "'pending', 'paid', 'processing', 'shipped', 'delivered', 'cancelled' or 'refunded'"
)


# -- helpers ------------------------------------------------------------------------------


def sandbox(harness: Harness) -> SandboxPaymentProvider:
    provider = harness.container.payments
    assert isinstance(provider, SandboxPaymentProvider)
    return provider


async def create(harness: Harness) -> dict[str, Any]:
    response = await harness.create_order()
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["data"]["order"]
    return order


async def record_paid(harness: Harness, order_id: str) -> None:
    """What a succeeded payment event does to the order (the API cannot do it yet)."""
    async with harness.container.store.unit_of_work() as uow:
        order = await uow.orders.get(uuid.UUID(order_id))
        assert order is not None
        assert order.record_payment_succeeded(harness.container.clock.now(), EventSource.PROVIDER)
        await uow.orders.save(order)
        await uow.commit()


async def paid_order(harness: Harness) -> dict[str, Any]:
    """An order whose intent succeeded at the sandbox and that is recorded as paid."""
    created = await create(harness)
    await sandbox(harness).mark_succeeded(created["paymentIntentId"])
    await record_paid(harness, created["id"])
    return await fetch(harness, created["id"])


async def paid_and_moved(harness: Harness, path: Sequence[str]) -> dict[str, Any]:
    """`paid_order`, then PATCHed to each status of `path` in turn (its id is what counts)."""
    order = await paid_order(harness)
    for step in path:
        await patched(harness, order["id"], {"status": step})
    return order


async def fetch(harness: Harness, order_id: str) -> dict[str, Any]:
    response = await harness.client.get(f"{ORDERS}/{order_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()["data"]
    return order


async def patch(harness: Harness, order_id: str, body: Any) -> httpx.Response:
    return await harness.client.patch(f"{ORDERS}/{order_id}", json=body, headers=AUTH)


async def delete(harness: Harness, order_id: str) -> httpx.Response:
    return await harness.client.delete(f"{ORDERS}/{order_id}", headers=AUTH)


async def patched(harness: Harness, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await patch(harness, order_id, body)
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["success"] is True
    assert envelope["message"] == "Order updated successfully"
    order: dict[str, Any] = envelope["data"]
    return order


def history_types(order: dict[str, Any]) -> list[str]:
    return [entry["type"] for entry in order["history"]]


def without_history(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if k != "history"}


# -- PATCH on a pending order -------------------------------------------------------------


@pytest.mark.parametrize("target", ["processing", "shipped", "delivered", "paid", "refunded"])
async def test_pending_order_cannot_be_moved(harness: Harness, target: str) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], {"status": target})
    error = assert_error(response, 409, f"Cannot move order from pending to {target}")
    assert error["code"] == "invalid_transition"
    after = await fetch(harness, created["id"])
    assert without_history(after) == created
    assert history_types(after) == ["order.created"]


async def test_patch_to_cancelled_points_to_delete(harness: Harness) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], {"status": "cancelled"})
    assert_error(response, 409, "Use DELETE /api/orders/:id to cancel an order")
    after = await fetch(harness, created["id"])
    assert after["status"] == "pending"
    assert after["cancelledAt"] is None
    assert history_types(after) == ["order.created"]


async def test_repeating_the_current_status_changes_nothing(harness: Harness) -> None:
    created = await create(harness)
    order = await patched(harness, created["id"], {"status": "pending"})
    assert order == created
    after = await fetch(harness, created["id"])
    assert without_history(after) == created
    assert history_types(after) == ["order.created"]


@pytest.mark.parametrize("body", [{}, {"status": None}, {"trackingNumber": None}])
async def test_empty_patch_is_400(harness: Harness, body: dict[str, Any]) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], body)
    error = assert_error(
        response, 400, "Validation error: body must contain at least one field to update"
    )
    assert error["details"] == [
        {"field": "body", "message": "must contain at least one field to update"}
    ]
    assert history_types(await fetch(harness, created["id"])) == ["order.created"]


@pytest.mark.parametrize(
    "field", ["customerName", "totalAmount", "items", "paymentStatus", "paidAt", "foo"]
)
async def test_patching_any_other_field_is_400(harness: Harness, field: str) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], {field: "x"})
    error = assert_error(response, 400, f"Validation error: {field} is not a known field")
    assert error["details"] == [{"field": field, "message": "is not a known field"}]
    assert without_history(await fetch(harness, created["id"])) == created


async def test_unknown_field_next_to_a_valid_one_changes_nothing(harness: Harness) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], {"metadata": {"a": "b"}, "foo": 1})
    assert_error(response, 400, "Validation error: foo is not a known field")
    assert without_history(await fetch(harness, created["id"])) == created


async def test_bogus_status_is_400(harness: Harness) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], {"status": "bogus"})
    assert_error(response, 400, f"Validation error: status must be one of {STATUS_CHOICES}")


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"trackingNumber": 12345}, "trackingNumber", "must be a string"),
        ({"trackingNumber": ""}, "trackingNumber", "must not be empty"),
        ({"shippingAddress": "somewhere"}, "shippingAddress", "must be an object"),
        ({"metadata": {"a": 1}}, "metadata.a", "must be a string"),
        ({"status": 3}, "status", f"must be one of {STATUS_CHOICES}"),
    ],
)
async def test_patch_field_types_are_checked(
    harness: Harness, body: dict[str, Any], field: str, problem: str
) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], body)
    error = assert_error(response, 400, f"Validation error: {field} {problem}")
    assert error["details"] == [{"field": field, "message": problem}]


async def test_patch_address_missing_a_field_is_400(harness: Harness) -> None:
    created = await create(harness)
    address = {k: v for k, v in NEW_ADDRESS.items() if k != "city"}
    response = await patch(harness, created["id"], {"shippingAddress": address})
    assert_error(response, 400, "Validation error: shippingAddress.city is required")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{bad", "Malformed JSON in request body"),
        (b"[]", "Validation error: body must be a JSON object"),
        (b"", "Validation error: body is required"),
    ],
)
async def test_patch_body_must_be_a_json_object(
    harness: Harness, content: bytes, message: str
) -> None:
    created = await create(harness)
    response = await harness.client.patch(
        f"{ORDERS}/{created['id']}",
        content=content,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert_error(response, 400, message)


async def test_tracking_number_on_a_pending_order_is_409(harness: Harness) -> None:
    created = await create(harness)
    response = await patch(harness, created["id"], {"trackingNumber": "1Z999AA10123456789"})
    assert_error(response, 409, "Cannot set trackingNumber while the order is pending")
    after = await fetch(harness, created["id"])
    assert after["trackingNumber"] is None
    assert history_types(after) == ["order.created"]


async def test_shipping_address_change_on_a_pending_order(harness: Harness) -> None:
    created = await create(harness)
    order = await patched(harness, created["id"], {"shippingAddress": NEW_ADDRESS})
    assert order["shippingAddress"] == NEW_ADDRESS
    assert order["billingAddress"] == ADDRESS
    assert order["status"] == "pending"
    assert order["updatedAt"] >= created["updatedAt"]
    after = await fetch(harness, created["id"])
    assert without_history(after) == order
    assert after["history"][1:] == [
        history_entry("order.updated", order["updatedAt"], "pending", "pending")
    ]


async def test_same_shipping_address_again_adds_no_history(harness: Harness) -> None:
    created = await create(harness)
    await patched(harness, created["id"], {"shippingAddress": NEW_ADDRESS})
    await patched(harness, created["id"], {"shippingAddress": NEW_ADDRESS})
    assert history_types(await fetch(harness, created["id"])) == [
        "order.created",
        "order.updated",
    ]


async def test_metadata_change(harness: Harness) -> None:
    created = await create(harness)
    order = await patched(harness, created["id"], {"metadata": {"giftWrap": "yes"}})
    assert order["metadata"] == {"giftWrap": "yes"}
    order = await patched(harness, created["id"], {"metadata": {"giftWrap": "no", "note": "x"}})
    assert order["metadata"] == {"giftWrap": "no", "note": "x"}
    after = await fetch(harness, created["id"])
    assert after["metadata"] == {"giftWrap": "no", "note": "x"}
    assert history_types(after) == ["order.created", "order.updated", "order.updated"]


async def test_metadata_over_50_keys_is_400(harness: Harness) -> None:
    created = await create(harness)
    metadata = {f"k{n}": "v" for n in range(51)}
    response = await patch(harness, created["id"], {"metadata": metadata})
    assert_error(response, 400, "Validation error: metadata must contain at most 50 items")


async def with_metadata(harness: Harness, metadata: dict[str, str]) -> dict[str, Any]:
    response = await harness.create_order(order_body(metadata=metadata))
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["data"]["order"]
    return order


async def test_metadata_merges_keys_like_stripe(harness: Harness) -> None:
    created = await with_metadata(harness, {"a": "1", "b": "2"})
    order = await patched(harness, created["id"], {"metadata": {"b": "3", "c": "4"}})
    assert order["metadata"] == {"a": "1", "b": "3", "c": "4"}
    order = await patched(harness, created["id"], {"metadata": {"a": ""}})
    assert order["metadata"] == {"b": "3", "c": "4"}
    after = await fetch(harness, created["id"])
    assert after["metadata"] == {"b": "3", "c": "4"}
    assert history_types(after) == ["order.created", "order.updated", "order.updated"]


async def test_metadata_null_clears_the_map(harness: Harness) -> None:
    created = await with_metadata(harness, {"a": "1", "b": "2"})
    order = await patched(harness, created["id"], {"metadata": None})
    assert order["metadata"] is None
    assert (await fetch(harness, created["id"]))["metadata"] is None
    again = await patched(harness, created["id"], {"metadata": None})
    assert again["metadata"] is None
    assert history_types(await fetch(harness, created["id"])) == [
        "order.created",
        "order.updated",
    ]


async def test_metadata_removing_every_key_leaves_null(harness: Harness) -> None:
    created = await with_metadata(harness, {"a": "1"})
    order = await patched(harness, created["id"], {"metadata": {"a": ""}})
    assert order["metadata"] is None


@pytest.mark.parametrize("body", [{"metadata": {"nope": ""}}, {"metadata": {}}])
async def test_metadata_patch_that_changes_nothing_adds_no_history(
    harness: Harness, body: dict[str, Any]
) -> None:
    created = await with_metadata(harness, {"a": "1"})
    order = await patched(harness, created["id"], body)
    assert order["metadata"] == {"a": "1"}
    assert history_types(await fetch(harness, created["id"])) == ["order.created"]


async def test_metadata_limit_holds_after_the_merge(harness: Harness) -> None:
    created = await with_metadata(harness, {f"k{n}": "v" for n in range(30)})
    more = {f"new{n}": "v" for n in range(21)}
    response = await patch(harness, created["id"], {"metadata": more})
    error = assert_error(
        response, 400, "Validation error: metadata must contain at most 50 items (51 after merging)"
    )
    assert error["code"] == "validation_error"
    unchanged = await fetch(harness, created["id"])
    assert len(unchanged["metadata"]) == 30
    assert history_types(unchanged) == ["order.created"]
    # removing one key in the same request makes room for it
    order = await patched(harness, created["id"], {"metadata": {**more, "k0": ""}})
    assert len(order["metadata"]) == 50 and "k0" not in order["metadata"]


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_patch_unknown_order_is_404(harness: Harness, order_id: str) -> None:
    response = await patch(harness, order_id, {"metadata": {"a": "b"}})
    assert_error(response, 404, "Order not found")


# -- DELETE on a pending order ------------------------------------------------------------


async def test_cancel_a_pending_order(harness: Harness) -> None:
    created = await create(harness)
    response = await delete(harness, created["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Order cancelled successfully"

    after = await fetch(harness, created["id"])
    assert after["status"] == "cancelled"
    assert after["paymentStatus"] == "cancelled"
    assert ISO_MS_UTC.match(after["cancelledAt"]), after["cancelledAt"]
    assert after["cancelledAt"] == after["updatedAt"]
    assert after["cancelledAt"] >= after["createdAt"]
    assert after["paidAt"] is None
    assert after["refunds"] == []
    assert after["refundedAmount"] == 0
    assert after["history"] == [
        history_entry("order.created", created["createdAt"], "pending", "pending"),
        history_entry("order.cancelled", after["cancelledAt"], "cancelled", "cancelled"),
    ]
    intent = await sandbox(harness).retrieve_intent(created["paymentIntentId"])
    assert intent.status == IntentStatus.CANCELED


async def test_cancelled_order_shows_in_the_list_as_cancelled(harness: Harness) -> None:
    created = await create(harness)
    assert (await delete(harness, created["id"])).status_code == 200
    listed = await harness.client.get(ORDERS, params={"status": "cancelled"}, headers=AUTH)
    assert [o["id"] for o in listed.json()["data"]] == [created["id"]]
    pending = await harness.client.get(ORDERS, params={"status": "pending"}, headers=AUTH)
    assert pending.json()["data"] == []


async def test_cancelling_twice_is_409(harness: Harness) -> None:
    created = await create(harness)
    assert (await delete(harness, created["id"])).status_code == 200
    before = await fetch(harness, created["id"])
    response = await delete(harness, created["id"])
    error = assert_error(response, 409, "Cannot cancel an order that is cancelled")
    assert error["code"] == "invalid_transition"
    assert await fetch(harness, created["id"]) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "processing"}, "Cannot move order from cancelled to processing"),
        ({"status": "shipped"}, "Cannot move order from cancelled to shipped"),
        ({"status": "pending"}, "Cannot move order from cancelled to pending"),
        ({"status": "cancelled"}, "Use DELETE /api/orders/:id to cancel an order"),
        ({"trackingNumber": "1Z999"}, "Cannot set trackingNumber while the order is cancelled"),
        (
            {"shippingAddress": NEW_ADDRESS},
            "Cannot change shippingAddress while the order is cancelled",
        ),
    ],
)
async def test_patch_on_a_cancelled_order_is_409(
    harness: Harness, body: dict[str, Any], message: str
) -> None:
    created = await create(harness)
    assert (await delete(harness, created["id"])).status_code == 200
    before = await fetch(harness, created["id"])
    response = await patch(harness, created["id"], body)
    assert_error(response, 409, message)
    assert await fetch(harness, created["id"]) == before


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_delete_unknown_order_is_404(harness: Harness, order_id: str) -> None:
    response = await delete(harness, order_id)
    assert_error(response, 404, "Order not found")


# -- paid orders --------------------------------------------------------------------------


async def test_paid_order_as_recorded(harness: Harness) -> None:
    order = await paid_order(harness)
    assert order["status"] == "paid"
    assert order["paymentStatus"] == "completed"
    assert ISO_MS_UTC.match(order["paidAt"]), order["paidAt"]
    assert history_types(order) == ["order.created", "order.paid"]
    assert order["history"][1]["source"] == "provider"


async def test_fulfilment_from_paid_to_delivered(harness: Harness) -> None:
    order = await paid_order(harness)
    order_id = order["id"]

    processing = await patched(harness, order_id, {"status": "processing"})
    assert processing["status"] == "processing"
    assert processing["paymentStatus"] == "completed"

    shipped = await patched(
        harness, order_id, {"status": "shipped", "trackingNumber": "1Z999AA10123456789"}
    )
    assert shipped["status"] == "shipped"
    assert shipped["trackingNumber"] == "1Z999AA10123456789"

    delivered = await patched(harness, order_id, {"status": "delivered"})
    assert delivered["status"] == "delivered"
    assert delivered["trackingNumber"] == "1Z999AA10123456789"
    assert delivered["paidAt"] == order["paidAt"]

    after = await fetch(harness, order_id)
    assert without_history(after) == delivered
    history = after["history"]
    assert [(e["type"], e["status"], e["paymentStatus"], e["source"]) for e in history] == [
        ("order.created", "pending", "pending", "api"),
        ("order.paid", "paid", "completed", "provider"),
        ("order.processing", "processing", "completed", "api"),
        ("order.shipped", "shipped", "completed", "api"),
        ("order.delivered", "delivered", "completed", "api"),
    ]
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)
    assert history[-1]["at"] == delivered["updatedAt"]


async def test_paid_order_can_ship_directly(harness: Harness) -> None:
    order = await paid_order(harness)
    shipped = await patched(harness, order["id"], {"status": "shipped", "trackingNumber": "T1"})
    assert shipped["status"] == "shipped"
    after = await fetch(harness, order["id"])
    assert history_types(after) == ["order.created", "order.paid", "order.shipped"]


async def test_seed_update_example_response(harness: Harness) -> None:
    order = await paid_order(harness)
    response = await patch(
        harness, order["id"], {"status": "shipped", "trackingNumber": "1Z999AA10123456789"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Order updated successfully"
    data = body["data"]
    assert data["id"] == order["id"]
    assert data["status"] == "shipped"
    assert data["trackingNumber"] == "1Z999AA10123456789"
    assert ISO_MS_UTC.match(data["updatedAt"])
    assert "history" not in data
    assert data["totalAmount"] == 109.97


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "delivered"),
        ([], "pending"),
        (["processing"], "paid"),
        (["processing"], "delivered"),
        (["shipped"], "processing"),
        (["shipped"], "paid"),
        (["shipped", "delivered"], "shipped"),
        (["shipped", "delivered"], "processing"),
        ([], "refunded"),
    ],
)
async def test_other_moves_are_409(harness: Harness, path: list[str], target: str) -> None:
    order = await paid_order(harness)
    current = "paid"
    for step in path:
        current = (await patched(harness, order["id"], {"status": step}))["status"]
    before = await fetch(harness, order["id"])
    response = await patch(harness, order["id"], {"status": target})
    assert_error(response, 409, f"Cannot move order from {current} to {target}")
    assert await fetch(harness, order["id"]) == before


async def test_tracking_number_on_a_paid_order(harness: Harness) -> None:
    order = await paid_order(harness)
    updated = await patched(harness, order["id"], {"trackingNumber": "TRACK-1"})
    assert updated["trackingNumber"] == "TRACK-1"
    assert updated["status"] == "paid"
    after = await fetch(harness, order["id"])
    assert after["history"][-1] == history_entry(
        "order.updated", updated["updatedAt"], "paid", "completed"
    )


async def test_repeating_shipped_fixes_the_tracking_number(harness: Harness) -> None:
    order = await paid_order(harness)
    await patched(harness, order["id"], {"status": "shipped", "trackingNumber": "WRONG"})
    fixed = await patched(harness, order["id"], {"status": "shipped", "trackingNumber": "RIGHT"})
    assert fixed["status"] == "shipped"
    assert fixed["trackingNumber"] == "RIGHT"
    unchanged = await patched(harness, order["id"], {"status": "shipped"})
    assert unchanged == fixed
    after = await fetch(harness, order["id"])
    assert history_types(after) == [
        "order.created",
        "order.paid",
        "order.shipped",
        "order.updated",
    ]


async def test_shipping_address_can_change_while_processing(harness: Harness) -> None:
    order = await paid_order(harness)
    await patched(harness, order["id"], {"status": "processing"})
    updated = await patched(harness, order["id"], {"shippingAddress": NEW_ADDRESS})
    assert updated["shippingAddress"] == NEW_ADDRESS


@pytest.mark.parametrize("path", SHIPPED_PATHS)
async def test_shipping_address_cannot_change_once_shipped(
    harness: Harness, path: list[str]
) -> None:
    order = await paid_and_moved(harness, path)
    response = await patch(harness, order["id"], {"shippingAddress": NEW_ADDRESS})
    assert_error(response, 409, f"Cannot change shippingAddress while the order is {path[-1]}")
    assert (await fetch(harness, order["id"]))["shippingAddress"] == ADDRESS


async def test_metadata_can_change_after_delivery(harness: Harness) -> None:
    order = await paid_and_moved(harness, ["shipped", "delivered"])
    updated = await patched(harness, order["id"], {"metadata": {"review": "5"}})
    assert updated["metadata"] == {"review": "5"}
    assert updated["status"] == "delivered"


async def deliveries_by_integration(harness: Harness, order_id: str) -> dict[str, list[str]]:
    """The event types of an order's deliveries, oldest first, by integration."""
    response = await harness.client.get(
        f"/api/monitoring/deliveries?orderId={order_id}&limit=100", headers=AUTH
    )
    assert response.status_code == 200, response.text
    found: dict[str, list[str]] = {}
    for item in reversed(response.json()["data"]):
        found.setdefault(item["integration"], []).append(item["eventType"])
    return found


async def test_a_tracking_number_after_shipping_is_mailed_on_its_own(harness: Harness) -> None:
    order = await paid_order(harness)
    await patched(harness, order["id"], {"status": "shipped"})
    await patched(harness, order["id"], {"trackingNumber": "1Z999AA10123456789"})
    await patched(harness, order["id"], {"trackingNumber": "1Z999AA10123456789"})  # the same
    await patched(harness, order["id"], {"status": "delivered", "trackingNumber": "CORRECTED"})
    after = await fetch(harness, order["id"])
    # the public trail is unchanged: after created, paid and shipped, each edit is an update
    assert history_types(after)[3:] == ["order.updated", "order.delivered", "order.updated"]
    found = await deliveries_by_integration(harness, order["id"])
    assert found["email"] == [
        "order.created",
        "order.paid",
        "order.shipped",
        "order.tracking_updated",
        "order.tracking_updated",
    ]
    assert "order.tracking_updated" not in found["notifications"] + found["sheets"]


async def test_a_tracking_number_given_before_or_with_shipping_is_in_the_shipped_email(
    harness: Harness,
) -> None:
    order = await paid_order(harness)
    await patched(harness, order["id"], {"trackingNumber": "EARLY"})
    await patched(harness, order["id"], {"status": "shipped", "trackingNumber": "1Z999"})
    found = await deliveries_by_integration(harness, order["id"])
    assert found["email"] == ["order.created", "order.paid", "order.shipped"]


# -- DELETE of a paid order: refunded in full ---------------------------------------------


def assert_cancelled_and_refunded(order: dict[str, Any]) -> None:
    assert order["status"] == "cancelled"
    assert order["paymentStatus"] == "refunded"
    assert ISO_MS_UTC.match(order["cancelledAt"] or ""), order["cancelledAt"]
    assert ISO_MS_UTC.match(order["paidAt"] or ""), order["paidAt"]
    assert len(order["refunds"]) == 1
    refund = order["refunds"][0]
    assert refund["id"].startswith("re_")
    assert refund["amount"] == order["totalAmount"] == 109.97
    assert refund["status"] == "succeeded"
    assert ISO_MS_UTC.match(refund["createdAt"])
    assert order["refundedAmount"] == 109.97
    types = [t for t in history_types(order) if t != "order.processing"]
    assert types[:2] == ["order.created", "order.paid"]
    assert sorted(types[2:]) == ["order.cancelled", "order.refunded"]
    assert order["history"][-1]["status"] == "cancelled"
    assert order["history"][-1]["paymentStatus"] == "refunded"


async def test_cancel_a_paid_order_refunds_it_in_full(harness: Harness) -> None:
    order = await paid_order(harness)
    response = await delete(harness, order["id"])
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    assert response.json()["message"] == "Order cancelled successfully"
    assert_cancelled_and_refunded(await fetch(harness, order["id"]))


async def test_cancel_a_processing_order_refunds_it_in_full(harness: Harness) -> None:
    order = await paid_order(harness)
    await patched(harness, order["id"], {"status": "processing"})
    response = await delete(harness, order["id"])
    assert response.status_code == 200, response.text
    after = await fetch(harness, order["id"])
    assert_cancelled_and_refunded(after)
    assert "order.processing" in history_types(after)


async def test_cancel_a_pending_order_whose_payment_already_succeeded(harness: Harness) -> None:
    """The provider says the intent succeeded: the payment is refunded instead."""
    created = await create(harness)
    await sandbox(harness).mark_succeeded(created["paymentIntentId"])
    response = await delete(harness, created["id"])
    assert response.status_code == 200, response.text
    assert_cancelled_and_refunded(await fetch(harness, created["id"]))


async def test_cancelled_paid_order_cannot_be_cancelled_again(harness: Harness) -> None:
    order = await paid_order(harness)
    assert (await delete(harness, order["id"])).status_code == 200
    before = await fetch(harness, order["id"])
    response = await delete(harness, order["id"])
    assert_error(response, 409, "Cannot cancel an order that is cancelled")
    assert await fetch(harness, order["id"]) == before


@pytest.mark.parametrize("path", SHIPPED_PATHS)
async def test_shipped_or_delivered_order_cannot_be_cancelled(
    harness: Harness, path: list[str]
) -> None:
    order = await paid_and_moved(harness, path)
    before = await fetch(harness, order["id"])
    response = await delete(harness, order["id"])
    assert_error(response, 409, f"Cannot cancel an order that is {path[-1]}")
    after = await fetch(harness, order["id"])
    assert after == before
    assert after["refunds"] == []
