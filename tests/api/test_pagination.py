"""SPEC §7 list: newest first, keyset pagination that repeats and skips nothing."""

from __future__ import annotations

import asyncio
import base64
import json

from tests.fixtures.app import AUTH, Harness
from tests.fixtures.orders import order_body


async def _create(h: Harness, n: int, **changes: object) -> list[str]:
    ids = []
    for _ in range(n):
        response = await h.create_order(order_body(**changes))
        assert response.status_code == 201
        ids.append(response.json()["data"]["order"]["id"])
    return ids


async def _page(h: Harness, query: str) -> dict[str, object]:
    response = await h.client.get(f"/api/orders?{query}", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_pages_newest_first_and_last_page_has_no_key(harness: Harness) -> None:
    ids = await _create(harness, 5)
    first = await _page(harness, "limit=2")
    assert [o["id"] for o in first["data"]] == ids[::-1][:2]
    assert first["pagination"]["hasMore"] is True
    seen = [o["id"] for o in first["data"]]
    key = first["pagination"]["lastKey"]
    while key:
        page = await _page(harness, f"limit=2&lastKey={key}")
        seen += [o["id"] for o in page["data"]]
        key = page["pagination"]["lastKey"]
        if not page["pagination"]["hasMore"]:
            assert key is None
    assert seen == ids[::-1]


async def test_orders_created_while_paging_are_neither_repeated_nor_skipped(
    harness: Harness,
) -> None:
    before = await _create(harness, 7)
    first = await _page(harness, "limit=3")
    seen = [o["id"] for o in first["data"]]
    key = first["pagination"]["lastKey"]
    while key:
        await asyncio.gather(*(harness.create_order() for _ in range(3)))  # created meanwhile
        page = await _page(harness, f"limit=3&lastKey={key}")
        seen += [o["id"] for o in page["data"]]
        key = page["pagination"]["lastKey"]
    assert seen == before[::-1]
    assert len(seen) == len(set(seen))


async def test_filters_by_status_and_customer(harness: Harness) -> None:
    alice = await _create(harness, 3, customerId="alice")
    bob = await _create(harness, 2, customerId="bob")
    await harness.client.delete(f"/api/orders/{alice[0]}", headers=AUTH)
    page = await _page(harness, "customerId=alice")
    assert [o["id"] for o in page["data"]] == alice[::-1]
    page = await _page(harness, "status=cancelled")
    assert [o["id"] for o in page["data"]] == [alice[0]]
    page = await _page(harness, "status=pending&customerId=bob&limit=1")
    assert [o["id"] for o in page["data"]] == [bob[1]]
    key = page["pagination"]["lastKey"]
    page = await _page(harness, f"status=pending&customerId=bob&limit=1&lastKey={key}")
    assert [o["id"] for o in page["data"]] == [bob[0]]


async def test_tampered_or_foreign_last_key_is_400(harness: Harness) -> None:
    ids = await _create(harness, 3)
    page = await _page(harness, "limit=1")
    key = page["pagination"]["lastKey"]
    assert isinstance(key, str)
    decoded = json.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    decoded["id"] = ids[0]
    tampered = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    seed_style = base64.b64encode(json.dumps({"id": ids[0]}).encode()).decode()
    for bad in (tampered, seed_style, "garbage!!", "eyJ"):
        response = await harness.client.get(f"/api/orders?lastKey={bad}", headers=AUTH)
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"] == (
            "Validation error: lastKey is not a valid pagination key"
        )
    # a key from one filter is foreign to another
    response = await harness.client.get(
        f"/api/orders?lastKey={key}&customerId=someone", headers=AUTH
    )
    assert response.status_code == 400


async def test_empty_list(harness: Harness) -> None:
    page = await _page(harness, "")
    assert page == {"success": True, "data": [], "pagination": {"lastKey": None, "hasMore": False}}
