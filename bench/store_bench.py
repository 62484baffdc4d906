"""Create and get by id through the real ASGI app, on SQLite and on DynamoDB (moto's
server), in the same run: requests per second, p50 and p99, and DynamoDB's ratio to
SQLite. In-process (httpx's ASGI transport), one request at a time, the worker off, so
the figure is the store's cost per request and not the network's.

    .venv/bin/python bench/store_bench.py                  # 300 creates, 600 gets each
    .venv/bin/python bench/store_bench.py --creates 1000 --gets 2000

moto is an emulator: its latency is not AWS's. The figure says what orderhub's DynamoDB
code path costs beside SQLite's on this machine, no more.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.orders import order_body

from bench.metrics_bench import bench_settings
from orderhub.app import create_app
from orderhub.bootstrap import build_container
from orderhub.kit.logging import configure_logging
from orderhub.store.dynamodb.migrate import create_tables
from orderhub.store.sql.migrate import upgrade_to_head

KEY = "bench-key-0123456789"
REGION = "us-east-1"


@dataclass
class Figure:
    store: str
    scenario: str
    count: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(
    store: str, database_url: str, data_dir: Path, creates: int, gets: int
) -> list[Figure]:
    settings = bench_settings(
        data_dir,
        database_url,
        api_keys=[KEY],
        email_backend="none",
        sheets_backend="none",
        notify_backend="none",
        aws_region=REGION,
    )
    container = build_container(settings)
    app = create_app(settings, container)
    await container.start()
    transport = httpx.ASGITransport(app=app)
    figures = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = {"X-API-Key": KEY}
            for _ in range(20):  # warm-up
                await client.post("/api/orders", json=order_body(), headers=headers)
            ids: list[str] = []
            latencies: list[float] = []
            started = time.perf_counter()
            for _ in range(creates):
                t0 = time.perf_counter()
                response = await client.post("/api/orders", json=order_body(), headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 201, response.text
                ids.append(response.json()["data"]["order"]["id"])
            figures.append(
                Figure(store, "create", creates, time.perf_counter() - started, latencies)
            )
            latencies = []
            started = time.perf_counter()
            for n in range(gets):
                t0 = time.perf_counter()
                response = await client.get(f"/api/orders/{ids[n % len(ids)]}", headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, response.text
            figures.append(
                Figure(store, "get by id", gets, time.perf_counter() - started, latencies)
            )
    finally:
        await container.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--gets", type=int, default=600)
    args = parser.parse_args()
    configure_logging("warning", "json")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://{host}:{port}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            sqlite_url = f"sqlite:///{Path(folder) / 'bench.db'}"
            upgrade_to_head(sqlite_url)
            dynamo_url = f"dynamodb://bench{uuid.uuid4().hex[:8]}"
            create_tables(dynamo_url, REGION)
            results: list[Figure] = []
            for store, url in (("sqlite", sqlite_url), ("dynamodb (moto)", dynamo_url)):
                data = Path(folder) / store.split()[0]
                data.mkdir()
                results += asyncio.run(_measure(store, url, data, args.creates, args.gets))
    finally:
        moto.stop()
    base = {f.scenario: f for f in results if f.store == "sqlite"}
    print("| scenario | store | req/s | p50 ms | p99 ms | ratio to SQLite (req/s) |")
    print("|---|---|---|---|---|---|")
    for f in results:
        ratio = f.rate / base[f.scenario].rate
        print(
            f"| {f.scenario} | {f.store} | {f.rate:,.0f} | {f.quantile(0.5):.1f} | "
            f"{f.quantile(0.99):.1f} | {ratio:.2f}x |"
        )
    python = sys.version.split()[0]
    print(f"\nPython {python}, {os.cpu_count()} CPUs, {args.creates} creates, {args.gets} gets")


if __name__ == "__main__":
    main()
