"""Scale-out as an operator runs it: two `orderhub serve --no-worker` and two
`orderhub worker` processes on one store (PostgreSQL, then DynamoDB) and one Redis, with
the file receivers for email, sheets and notifications in their shared data directory.

A burst of orders goes through both API processes at once (payments on the sandbox,
partial and full refunds, two refunds of one order at the same time on both processes,
shipments, a cancellation). Then: every order reads as its steps make it, from either
process; every delivery reached its receiver exactly once (no event twice, none
missing, nothing attempted twice); and the rate limit, shared through Redis, let
through exactly its limit across both processes."""

from __future__ import annotations

import asyncio
import csv
import email
import email.message
import email.policy
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.cli import cli_env, free_port, start_cli, wait_healthy
from tests.fixtures.orders import order_body

# orders of each of the four kinds; fewer on DynamoDB, whose local stand-in (moto) answers
# one request at a time
ORDERS_PER_KIND = {"postgresql": 4, "dynamodb": 1}
LIMIT = 150  # requests per credential in the window, shared by both API processes
EXTRA = 30  # requests past the limit in the rate-limit check
pytestmark = pytest.mark.timeout(300)  # four processes to start on a busy machine

REFUND_EVENTS = {"order.partially_refunded", "order.refunded"}
EMAIL_EVENTS = {"order.created", "order.paid", "order.shipped", "order.cancelled"} | REFUND_EVENTS


@pytest.fixture(params=["postgres", "dynamodb"])
def shared_store(request: pytest.FixtureRequest, redis_url: str) -> str:
    """A fresh, migrated scale-out store (PostgreSQL schema or DynamoDB tables)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database_url")
    else:
        url = request.getfixturevalue("dynamodb_url")  # processes reach moto through the env
    return url


@dataclass
class Cluster:
    apis: list[str]  # base URLs of the two API processes
    data_dir: Path
    keys: dict[str, str]  # purpose -> API key, each counted apart by the rate limit

    def headers(self, purpose: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[purpose]}


@contextmanager
def _cluster(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Cluster]:
    run = uuid.uuid4().hex[:12]  # keys of this run only: Redis counters no other run shares
    keys = {p: f"scale-{p}-{run}" for p in ("burst", "check", "poll", "limit")}
    data_dir = tmp_path / "data"
    ports = [free_port(), free_port()]
    env = cli_env(
        data_dir,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        API_KEYS=",".join(keys.values()),
        RATE_LIMIT_BY="credential",
        RATE_LIMIT_MAX=str(LIMIT),
        RATE_LIMIT_WINDOW_SECONDS="3600",
        WORKER_POLL_SECONDS="0.5",
        LOG_LEVEL="warning",
    )
    processes: list[subprocess.Popen[bytes]] = [
        *(start_cli(["serve", "--no-worker"], {**env, "PORT": str(p)}, tmp_path) for p in ports),
        *(start_cli(["worker"], env, tmp_path) for _ in range(2)),
    ]
    apis = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in apis:
            assert wait_healthy(base, 90), f"serve --no-worker at {base} did not start"
        yield Cluster(apis, data_dir, keys)
        assert [p.poll() for p in processes] == [None] * 4, "a process stopped by itself"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json()["data"]


@asynccontextmanager
async def _clients(cluster: Cluster, purpose: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [
        httpx.AsyncClient(base_url=base, headers=cluster.headers(purpose), timeout=30)
        for base in cluster.apis
    ]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


# -- the burst --------------------------------------------------------------------------------


@dataclass
class Expected:
    status: str
    payment_status: str
    refunded: Decimal
    events: list[str]


async def _order(a: httpx.AsyncClient, b: httpx.AsyncClient, n: int) -> tuple[str, Expected]:
    """One order's life, each step on the other process than the step before."""
    kind = n % 4
    created = _ok(await a.post("/api/orders", json=order_body(customerId=f"c{n}")), 201)
    order = created["order"]
    oid = order["id"]
    if kind == 3:  # cancelled before it was paid
        assert _ok(await b.delete(f"/api/orders/{oid}"))["status"] == "cancelled"
        return oid, Expected(
            "cancelled", "cancelled", Decimal(0), ["order.created", "order.cancelled"]
        )
    confirm = {
        "orderId": oid,
        "paymentIntentId": order["paymentIntentId"],
        "paymentMethod": "pm_card_visa",
    }
    assert _ok(await b.post("/api/payments/confirm", json=confirm)) == {"status": "succeeded"}
    paid = ["order.created", "order.paid"]
    ship = {"status": "shipped", "trackingNumber": f"1Z{n:016d}"}
    if kind == 0:  # refunded in part, then shipped
        refund = _ok(await a.post("/api/payments/refund", json={"orderId": oid, "amount": 10}))
        assert (refund["amount"], refund["status"]) == (1000, "succeeded")
        assert _ok(await b.patch(f"/api/orders/{oid}", json=ship))["status"] == "shipped"
        events = [*paid, "order.partially_refunded", "order.shipped"]
        return oid, Expected("shipped", "partially_refunded", Decimal(10), events)
    if kind == 1:  # two refunds at once on both processes, both fit; a third does not
        half = {"orderId": oid, "amount": 50}
        answers = await asyncio.gather(
            a.post("/api/payments/refund", json=half), b.post("/api/payments/refund", json=half)
        )
        assert [_ok(r)["amount"] for r in answers] == [5000, 5000]
        too_much = await a.post("/api/payments/refund", json={"orderId": oid, "amount": 20})
        assert too_much.status_code == 409, too_much.text
        events = [*paid, "order.partially_refunded", "order.partially_refunded"]
        return oid, Expected("paid", "partially_refunded", Decimal(100), events)
    # kind 2: shipped, then refunded in full
    assert _ok(await a.patch(f"/api/orders/{oid}", json=ship))["status"] == "shipped"
    refund = _ok(await b.post("/api/payments/refund", json={"orderId": oid}))
    assert refund["amount"] == 10997
    events = [*paid, "order.shipped", "order.refunded"]
    return oid, Expected("refunded", "refunded", Decimal("109.97"), events)


async def _burst(cluster: Cluster, orders: int) -> dict[str, Expected]:
    async with _clients(cluster, "burst") as (one, two):
        in_flight = asyncio.Semaphore(8)

        async def life(n: int) -> tuple[str, Expected]:
            async with in_flight:
                return await (_order(one, two, n) if n % 2 else _order(two, one, n))

        done = await asyncio.gather(*(life(n) for n in range(orders)))
    return dict(done)


# -- reading back -----------------------------------------------------------------------------


async def _all_deliveries(client: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100, **filters}
    while True:
        response = await client.get("/api/monitoring/deliveries", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        if not body["pagination"]["hasMore"]:
            return found
        params["lastKey"] = body["pagination"]["lastKey"]


async def _drained(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every delivery, once none is waiting any more (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        deliveries = await _all_deliveries(client)
        waiting = [d for d in deliveries if d["status"] in ("pending", "in_flight")]
        if not waiting or time.monotonic() > deadline:
            return deliveries
        await asyncio.sleep(1)


async def _check_orders(cluster: Cluster, expected: dict[str, Expected]) -> None:
    async with _clients(cluster, "check") as clients:
        for n, (oid, want) in enumerate(expected.items()):
            order = _ok(await clients[n % 2].get(f"/api/orders/{oid}"))
            assert (order["status"], order["paymentStatus"]) == (
                want.status,
                want.payment_status,
            ), oid
            assert Decimal(str(order["refundedAmount"])) == want.refunded, oid
            accepted = [r for r in order["refunds"] if r["status"] == "succeeded"]
            assert sum(Decimal(str(r["amount"])) for r in accepted) == want.refunded, oid
            assert [h["type"] for h in order["history"]] == want.events, oid


def _notifications(data_dir: Path) -> list[dict[str, Any]]:
    lines = (data_dir / "notifications.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _mails(data_dir: Path) -> dict[str, str]:
    """Delivery id (the file's name) -> the message's subject and plain text."""
    found: dict[str, str] = {}
    for path in (data_dir / "mail").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None, path
        found[path.stem] = f"{message['Subject']}\n{body.get_content()}"
    return found


def _check_receivers(
    cluster: Cluster, expected: dict[str, Expected], deliveries: list[dict[str, Any]]
) -> None:
    assert {d["status"] for d in deliveries} == {"delivered"}, Counter(
        d["status"] for d in deliveries
    )
    assert {d["attempts"] for d in deliveries} == {1}  # no delivery was sent twice
    by_integration: dict[str, list[dict[str, Any]]] = {}
    for d in deliveries:
        by_integration.setdefault(d["integration"], []).append(d)
    assert {d["orderId"] for d in deliveries} == set(expected)

    # notifications: one line per event of every order, each once
    lines = _notifications(cluster.data_dir)
    assert Counter(line["deliveryId"] for line in lines).most_common(1)[0][1] == 1
    assert Counter(line["id"] for line in lines).most_common(1)[0][1] == 1
    assert {line["deliveryId"] for line in lines} == {
        d["id"] for d in by_integration["notifications"]
    }
    for oid, want in expected.items():
        types = [line["type"] for line in lines if line["data"]["order"]["id"] == oid]
        assert sorted(types) == sorted(want.events), oid

    # email: one message per email event of every order, each once
    mails = _mails(cluster.data_dir)
    emails = by_integration["email"]
    assert set(mails) == {d["id"] for d in emails}
    for oid, want in expected.items():
        sent = [d["eventType"] for d in emails if d["orderId"] == oid]
        assert sorted(sent) == sorted(e for e in want.events if e in EMAIL_EVENTS), oid
        for d in emails:
            if d["orderId"] == oid:
                assert oid in mails[d["id"]]  # the message names its order
    assert not list((cluster.data_dir / "mail").glob(".*.tmp"))

    # sheets: one row per order, its final state
    with (cluster.data_dir / "sheets" / "orders.csv").open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert Counter(row[0] for row in rows).most_common(1)[0][1] == 1
    status, payment = header.index("Status"), header.index("Payment Status")
    assert {row[0]: (row[status], row[payment]) for row in rows} == {
        oid: (want.status, want.payment_status) for oid, want in expected.items()
    }


async def _check_rate_limit(cluster: Cluster) -> Counter[int]:
    """`LIMIT + EXTRA` requests on a fresh credential, half on each process, 10 at a time;
    each is a bad list request (400), which the limit counts as any other and which asks
    nothing of the store."""
    async with _clients(cluster, "limit") as clients:
        in_flight = asyncio.Semaphore(10)

        async def one(n: int) -> int:
            async with in_flight:
                response = await clients[n % 2].get("/api/orders", params={"limit": 0})
                return response.status_code

        return Counter(await asyncio.gather(*(one(n) for n in range(LIMIT + EXTRA))))


async def _scenario(cluster: Cluster, orders: int) -> None:
    expected = await _burst(cluster, orders)
    await _check_orders(cluster, expected)
    async with _clients(cluster, "poll") as (client, _other):
        deliveries = await _drained(client)
    _check_receivers(cluster, expected, deliveries)
    assert await _check_rate_limit(cluster) == {400: LIMIT, 429: EXTRA}


async def test_two_apis_and_two_workers_on_one_store(
    tmp_path: Path, shared_store: str, redis_url: str
) -> None:
    with _cluster(tmp_path, shared_store, redis_url) as cluster:
        await _scenario(cluster, 4 * ORDERS_PER_KIND[shared_store.split(":", 1)[0]])
