from tests.fixtures.app import AUTH, Harness


async def test_seed_create_then_get(harness: Harness) -> None:
    response = await harness.create_order()
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == "Order created successfully"
    order_id = body["data"]["order"]["id"]
    got = await harness.client.get(f"/api/orders/{order_id}", headers=AUTH)
    assert got.status_code == 200, got.text
    assert got.json()["data"]["totalAmount"] == 109.97
