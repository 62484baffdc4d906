"""`GET /metrics` across processes and its cost: `serve --workers 2` counts every request
whichever process answers the scrape, and a scrape reads the store's gauges once."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from tests.fixtures.app import Harness
from tests.fixtures.cli import cli_env, free_port, run_cli, start_cli, wait_healthy
from tests.fixtures.counting_store import CountingStore
from tests.fixtures.orders import order_body
from tests.fixtures.prometheus import Scrape

KEY = "prometheus-workers-key-1"
REQUESTS = "orderhub_http_requests_total"
LIST = {"method": "GET", "route": "/api/orders", "status": "200"}


# -- one read of the store's gauges per scrape ----------------------------------------------


async def test_a_scrape_reads_the_store_gauges_once(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(metrics_public=True)
    for _ in range(2):
        assert (await h.create_order()).status_code == 201
    counting = CountingStore(h.container.store)
    h.container.store = counting
    for _ in range(3):
        counting.reset()
        response = await h.client.get("/metrics")
        assert response.status_code == 200, response.text
        # the gauges (backlog and orders by status) once, the oldest waiting delivery once
        assert counting.calls == {"monitoring.gauges": 1, "deliveries.oldest_waiting_at": 1}
        scrape = Scrape(response.text)
        assert scrape.value("orderhub_orders", status="pending") == 2
        assert scrape.value("orderhub_outbox_backlog") == 6  # 2 orders, 3 integrations


# -- serve --workers 2 ------------------------------------------------------------------------


def _env(tmp_path: Path, port: int, **settings: str) -> dict[str, str]:
    return cli_env(
        tmp_path / "data",
        API_KEYS=KEY,
        PORT=str(port),
        METRICS_PUBLIC="true",
        RATE_LIMIT_MAX="100000",
        LOG_LEVEL="warning",
        **settings,
    )


@contextmanager
def _serving_two_processes(
    tmp_path: Path, database_url: str
) -> Iterator[tuple[httpx.Client, Path]]:
    """`serve --workers 2` on `database_url`; the client opens a connection per request
    (so either process may answer), and the system temp dir the CLI makes its metrics
    directory in."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    env = _env(tmp_path, port, DATABASE_URL=database_url, TMPDIR=str(temp))
    process: subprocess.Popen[bytes] = start_cli(["serve", "--workers", "2"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base, 90), "serve --workers 2 did not start"
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, timeout=10, limits=limits) as client:
            yield client, temp
    finally:
        process.terminate()
        process.wait(timeout=30)


def _per_process(metrics_dir: Path, route: str) -> dict[str, float]:
    """Requests to `route` each process counted, read from its own file (by pid)."""
    counted: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        counted[pid] = sum(
            s.value
            for metric in MultiProcessCollector.merge([str(path)])
            for s in metric.samples
            if s.name == REQUESTS and s.labels.get("route") == route
        )
    return counted


def _counted_by_each(metrics_dir: Path, route: str, total: int) -> dict[str, float]:
    """`_per_process`, once the processes have counted `total` requests in all: a request
    is counted just after its answer went out (5 s at most)."""
    deadline = time.monotonic() + 5
    while True:
        counted = _per_process(metrics_dir, route)
        if sum(counted.values()) >= total or time.monotonic() > deadline:
            return counted
        time.sleep(0.05)


def test_serve_workers_2_counts_every_request_in_every_scrape(
    tmp_path: Path, dynamodb_url: str
) -> None:
    with _serving_two_processes(tmp_path, dynamodb_url) as (api, temp):
        [metrics_dir] = temp.glob("orderhub-metrics-*")  # the run's fresh directory
        sent = 0
        # requests until both processes have answered some (the kernel picks which)
        answered: dict[str, float] = {}
        while sent < 400 and not (len(answered) == 2 and all(answered.values())):
            for _ in range(10):
                listed = api.get("/api/orders", params={"limit": 1}, headers={"X-API-Key": KEY})
                assert listed.status_code == 200, listed.text
                sent += 1
            answered = _counted_by_each(metrics_dir, "/api/orders", sent)
        assert len(answered) == 2 and all(answered.values()), answered
        assert sum(answered.values()) == sent

        # scrapes until both processes have answered one: each shows every request
        scraped: dict[str, float] = {}
        for scrapes in range(1, 51):
            response = api.get("/metrics")
            assert response.status_code == 200, response.text
            assert Scrape(response.text).value(REQUESTS, **LIST) == sent
            scraped = _counted_by_each(metrics_dir, "/metrics", scrapes)
            if len(scraped) == 2:
                break
        assert len(scraped) == 2, f"one process answered every scrape: {scraped}"
    assert not metrics_dir.exists()  # removed when serve stops


def test_a_named_metrics_directory_gathers_the_worker_process_too(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR set by the operator for `serve --no-worker` and `worker`
    on one host: the scrape shows the worker's deliveries; the directory is left as it is."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    port = free_port()
    env = _env(tmp_path, port, PROMETHEUS_MULTIPROC_DIR=str(shared))
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    server = start_cli(["serve", "--no-worker"], env, tmp_path)
    worker = start_cli(["worker"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base), "serve did not start"
        created = httpx.post(
            f"{base}/api/orders", json=order_body(), headers={"X-API-Key": KEY}, timeout=10
        )
        assert created.status_code == 201, created.text
        delivered = 0.0
        deadline = time.monotonic() + 30
        while delivered < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            scrape = Scrape(httpx.get(f"{base}/metrics", timeout=10).text)
            delivered = scrape.value("orderhub_deliveries_total", outcome="delivered")
        assert delivered == 3  # email, sheets, notifications, sent by the worker process
        assert scrape.value(REQUESTS, method="POST", route="/api/orders") == 1
    finally:
        for process in (server, worker):
            process.terminate()
            process.wait(timeout=30)
    assert list(shared.glob("counter_*.db"))  # the counts stay for the operator
