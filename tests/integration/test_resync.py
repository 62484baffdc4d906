"""Resync: `POST /api/monitoring/resync` and `orderhub resync` send the current state of
orders again through the outbox. A sheet with rows deleted and edited by hand is rebuilt
equal to one that never lost a row; a resync during live traffic adds no duplicate."""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.app import AUTH, Harness
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.integrations import Recorders

URL = "/api/monitoring/resync"


async def _drain(h: Harness) -> None:
    while await h.container.worker.run_once() > 0:
        pass


def _sheet(h: Harness) -> Path:
    return h.settings.data_dir / "sheets" / "orders.csv"


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def _write(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)


async def _resync(h: Harness, **body: Any) -> httpx.Response:
    """POST the resync endpoint with credentials and `body`."""
    return await h.client.post(URL, json=body, headers=AUTH)


async def _shop(h: Harness, count: int) -> list[str]:
    """`count` orders in several states: created, paid, paid and shipped with a tracking
    number; their deliveries all sent (the worker drained). Returns their ids."""
    ids = []
    for n in range(count):
        created = await h.create_order()
        assert created.status_code == 201
        order = created.json()["data"]["order"]
        ids.append(order["id"])
        if n % 3:
            assert (await h.confirm(order)).status_code == 200
        if n % 3 == 2:
            patch = {"status": "shipped", "trackingNumber": f"TRACK-{n}"}
            shipped = await h.client.patch(f"/api/orders/{order['id']}", json=patch, headers=AUTH)
            assert shipped.status_code == 200
    await _drain(h)
    return ids


async def test_a_sheet_edited_and_cut_by_hand_is_rebuilt_as_it_should_be(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness()
    ids = await _shop(h, 6)
    expected = _rows(_sheet(h))
    assert len(expected) == 1 + 6  # the header and one row per order
    header, *rows = expected
    status = header.index("Status")
    # by hand: two rows deleted, one edited, one copied
    edited = list(rows[1])
    edited[status] = "refunded"
    damaged = [header, rows[0], edited, rows[3], rows[3], rows[5]]
    _write(_sheet(h), damaged)

    answer = await _resync(h, integration="sheets")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "success": True,
        "data": {"queued": 6},
        "message": "6 deliveries queued",
    }
    await _drain(h)
    rebuilt = _rows(_sheet(h))
    assert rebuilt[0] == header
    assert sorted(rebuilt[1:]) == sorted(rows)  # every order once, at its newest version
    # nothing more to do: a second resync rewrites nothing
    before = _sheet(h).read_bytes()
    again = await _resync(h, integration="sheets", since="1h")
    assert again.json()["data"] == {"queued": 6}
    await _drain(h)
    assert _sheet(h).read_bytes() == before
    # one order only
    one = await _resync(h, integration="sheets", orderId=ids[2])
    assert one.json()["data"] == {"queued": 1}


async def test_a_resync_during_live_traffic_adds_no_duplicate(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness()
    ids = await _shop(h, 6)

    async def traffic() -> None:
        for order_id in ids:
            change = {"metadata": {"note": "changed while resyncing"}}
            answer = await h.client.patch(f"/api/orders/{order_id}", json=change, headers=AUTH)
            assert answer.status_code == 200

    async def resync() -> None:
        answer = await _resync(h, integration="sheets")
        assert answer.json()["data"] == {"queued": 6}

    async def worker() -> None:
        for _ in range(20):
            await h.container.worker.run_once()
            await asyncio.sleep(0)

    await asyncio.gather(traffic(), resync(), worker())
    await _drain(h)
    header, *rows = _rows(_sheet(h))
    assert sorted(r[0] for r in rows) == sorted(ids)  # one row per order, none twice
    version = header.index("Version")
    for order_id in ids:
        async with h.container.store.unit_of_work() as uow:
            stored = await uow.orders.get(uuid.UUID(order_id))
        assert stored is not None
        (row,) = [r for r in rows if r[0] == order_id]
        assert int(row[version]) == stored.version  # the newest version


async def test_notifications_get_each_order_once_more(make_harness: Callable[..., Any]) -> None:
    rec = Recorders()
    h: Harness = await make_harness(integrations=rec.integrations())
    ids = await _shop(h, 3)
    sent = len(rec.notifications.published)
    answer = await _resync(h, integration="notifications")
    assert answer.json()["data"] == {"queued": 3}
    await _drain(h)
    again = rec.notifications.published[sent:]
    assert sorted(m.order["id"] for m in again) == sorted(ids)
    newest = set()  # each order's newest public event, from its history
    for order_id in ids:
        async with h.container.store.unit_of_work() as uow:
            history = await uow.orders.history(uuid.UUID(order_id))
        newest.add(str([e for e in history if not e.type.internal][-1].id))
    assert {m.event_id for m in again} == newest


async def test_bad_resync_requests(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(notify_backend="none")
    cases: list[tuple[Any, int, str]] = [
        ({"integration": "email"}, 400, "Validation error: integration"),
        ({}, 400, "Validation error: integration"),
        ({"integration": "sheets", "since": "whenever"}, 400, "Validation error: since"),
        ({"integration": "sheets", "orderId": "nope"}, 404, "Order not found"),
        ({"integration": "sheets", "bogus": True}, 400, "Validation error: bogus"),
        ({"integration": "notifications"}, 409, "The notifications integration is not"),
    ]
    for body, status, message in cases:
        answer = await _resync(h, **body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"]["message"].startswith(message), answer.json()
    assert (await h.client.post(URL, json={"integration": "sheets"})).status_code == 401


async def test_the_resync_command(make_harness: Callable[..., Any], tmp_path: Path) -> None:
    h: Harness = await make_harness()
    ids = await _shop(h, 2)
    env = cli_env(h.settings.data_dir, DATABASE_URL=h.settings.database_url, LOG_LEVEL="warning")
    one = await asyncio.to_thread(run_cli, ["resync", "sheets", "--order", ids[0]], env, tmp_path)
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == "queued 1 sheets delivery"
    every = await asyncio.to_thread(run_cli, ["resync", "sheets", "--since", "7d"], env, tmp_path)
    assert every.stdout.strip() == "queued 2 sheets deliveries"
    bad = await asyncio.to_thread(run_cli, ["resync", "email"], env, tmp_path)
    assert bad.returncode == 2 and "sheets or notifications" in bad.stderr
