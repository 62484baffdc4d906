"""A process killed with SIGKILL in the middle of a burst of orders loses no acknowledged
order and no delivery, and delivers nothing twice (SPEC §10), as a user would run it."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.orders import order_body

KEY = "crash-test-key-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    for name in ("DATABASE_URL", "REDIS_URL", "PAYMENT_PROVIDER", "HOST"):
        env.pop(name, None)
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "API_KEYS": KEY,
            "PORT": str(port),
            "RATE_LIMIT_MAX": "100000",
            "WORKER_LEASE_SECONDS": "2",
            "LOG_LEVEL": "warning",
        }
    )
    return env


def _start(args: list[str], data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orderhub", *args],
        env=_env(data_dir, port),
        cwd=data_dir.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


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
    port = _free_port()
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

    port = _free_port()
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
