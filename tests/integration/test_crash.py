"""A process killed with SIGKILL in the middle of a burst of orders loses no acknowledged
order and no delivery, and delivers nothing twice (SPEC §10), as a user would run it."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.cli import cli_env, free_port, start_cli, wait_healthy
from tests.fixtures.orders import order_body

KEY = "crash-test-key-123"


def _env(data_dir: Path, port: int) -> dict[str, str]:
    return cli_env(
        data_dir,
        API_KEYS=KEY,
        PORT=str(port),
        RATE_LIMIT_MAX="100000",
        WORKER_LEASE_SECONDS="2",
        LOG_LEVEL="warning",
    )


def _start(args: list[str], data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return start_cli(args, _env(data_dir, port), data_dir.parent)


def _wait_healthy(base: str) -> None:
    assert wait_healthy(base), "server did not start"


async def _burst(
    base: str, process: subprocess.Popen[bytes], total: int, kill_after: int
) -> list[str]:
    """Create orders 8 at a time; SIGKILL the server once `kill_after` were acknowledged."""
    acknowledged: list[str] = []
    killed = False
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEY}, timeout=10) as client:

        async def one(n: int) -> None:
            nonlocal killed
            try:
                response = await client.post("/api/orders", json=order_body(customerId=f"cust_{n}"))
            except httpx.HTTPError:
                return  # not acknowledged: the client must not count on it
            if response.status_code == 201:
                acknowledged.append(response.json()["data"]["order"]["id"])
                if len(acknowledged) >= kill_after and not killed:
                    killed = True
                    process.send_signal(signal.SIGKILL)

        for start in range(0, total, 8):
            await asyncio.gather(*(one(n) for n in range(start, min(total, start + 8))))
            if killed:
                break
    return acknowledged


def _get(base: str, path: str) -> Any:
    response = httpx.get(f"{base}{path}", headers={"X-API-Key": KEY}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_sigkill_mid_burst_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = _start(["serve"], data_dir, port)
    try:
        _wait_healthy(base)
        acknowledged = asyncio.run(_burst(base, first, total=200, kill_after=30))
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 30

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    second = _start(["serve"], data_dir, port)
    try:
        _wait_healthy(base)
        # every acknowledged order is there
        stored: set[str] = set()
        key = None
        while True:
            page = _get(base, "/api/orders?limit=100" + (f"&lastKey={key}" if key else ""))
            stored |= {o["id"] for o in page["data"]}
            key = page["pagination"]["lastKey"]
            if not key:
                break
        assert set(acknowledged) <= stored
        # the restarted worker takes over the dead process's leases and finishes everything
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = [
                d
                for status in ("pending", "in_flight")
                for d in _get(base, f"/api/monitoring/deliveries?status={status}&limit=100")["data"]
            ]
            if not waiting:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"deliveries still waiting: {len(waiting)}")
        dead = _get(base, "/api/monitoring/deliveries?status=dead")["data"]
        assert dead == []
    finally:
        second.terminate()
        second.wait(timeout=15)

    # each sink got each delivery exactly once
    lines = [
        json.loads(line) for line in (data_dir / "notifications.jsonl").read_text().splitlines()
    ]
    per_event = Counter(line["id"] for line in lines)
    assert all(count == 1 for count in per_event.values()), per_event.most_common(3)
    created = {line["data"]["order"]["id"] for line in lines if line["type"] == "order.created"}
    assert created == stored
    mails = list((data_dir / "mail").glob("*.eml"))
    assert len(mails) == len(stored)
    with (data_dir / "sheets" / "orders.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    order_ids = [row[0] for row in rows[1:]]
    assert sorted(order_ids) == sorted(stored)
