"""The scenarios of `make bench`. Each one starts the servers it needs (fresh data
directories, server pinned to core 0), drives them with wrk from core 1, and adds its
wrk runs, target checks and figures to the report."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.fixtures.orders import SEED_ORDER  # the API documentation's example order

from bench.harness import servers
from bench.harness.report import AbsoluteCheck, Check, Report, Run, cpu_note, fmt_number
from bench.harness.servers import Server, running
from bench.harness.wrk import LUA_DIR, Load, WrkResult, run_wrk

IDS_WANTED = 1000
SETTLE_LIMIT_S = 180.0


@dataclass
class Bench:
    workdir: Path
    duration: int
    saturate_seconds: int = 60
    soak_seconds: int = 150
    sheet_rows: int = 100_000
    big_orders: int = 100_000
    small_orders: int = 1_000
    pg_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    report: Report = field(default_factory=Report)
    log: Callable[[str], None] = print

    last_run: Run | None = None

    def __post_init__(self) -> None:
        self.body_file = self.workdir / "order.json"
        self.body_file.write_text(json.dumps(SEED_ORDER), encoding="utf-8")
        self._dirs = 0

    def fresh_dir(self, name: str) -> Path:
        self._dirs += 1
        path = self.workdir / f"{self._dirs:02d}-{name}"
        path.mkdir(parents=True)
        return path

    # -- driving wrk -------------------------------------------------------------------

    def load(self, script: str, server: Server, ids: Path | None = None) -> Load:
        env = {
            "BENCH_LUA_DIR": str(LUA_DIR),
            "BENCH_API_KEY": server.api_key,
            "BENCH_BODY": str(self.body_file),
        }
        if ids is not None:
            env["BENCH_IDS"] = str(ids)
        return Load(script, env)

    def wrk(
        self,
        scenario: str,
        server: Server,
        script: str,
        *,
        path: str = "/",
        ids: Path | None = None,
        seconds: int | None = None,
        record: bool = True,
        note: str = "",
    ) -> WrkResult:
        seconds = seconds or self.duration
        self.log(f"  wrk {scenario} on {server.name} ({seconds} s)")
        cpu_before = server.cpu_seconds()
        result = run_wrk(server.url + path, self.load(script, server, ids), seconds=seconds)
        self.last_run = Run(scenario, server.name, result, note, server.cpu_seconds() - cpu_before)
        if record:
            self.report.runs.append(self.last_run)
        self.log(
            f"    {fmt_number(result.rps)} req/s, p50 {fmt_number(result.p50_ms)} ms, "
            f"p99 {fmt_number(result.p99_ms)} ms, {result.errors} errors"
        )
        return result

    def ids_file(self, server: Server, name: str) -> Path:
        """Ids of up to 1,000 orders the server holds (creating some first if it has
        fewer), one per line, for the Lua scripts."""
        ids = order_ids(server)
        if len(ids) < IDS_WANTED // 10:
            self.wrk("prefill", server, "create.lua", seconds=5, record=False)
            self.settle(server)
            ids = order_ids(server)
        path = self.workdir / f"ids-{name}.txt"
        path.write_text("\n".join(ids) + "\n", encoding="utf-8")
        return path

    def settle(self, server: Server) -> float | None:
        """Wait until the outbox is empty (orderhub on SQLite); the seconds it took, or
        None if it did not empty within SETTLE_LIMIT_S."""
        if server.db_path is None:
            return 0.0
        started = time.monotonic()
        while time.monotonic() - started < SETTLE_LIMIT_S:
            if servers.backlog(servers.delivery_counts(server.db_path)) == 0:
                return time.monotonic() - started
            time.sleep(0.5)
        self.log(f"  {server.name}: outbox not empty after {SETTLE_LIMIT_S:.0f} s")
        return None

    def check(self, *checks: Check | AbsoluteCheck) -> None:
        self.report.checks.extend(checks)

    def figure(self, name: str, value: str) -> None:
        self.report.figures.append((name, value))


def order_ids(server: Server) -> list[str]:
    """Ids through the server's own list endpoint (both orderhub and the baseline have
    `GET /api/orders?limit=`), newest first."""
    ids: list[str] = []
    params: dict[str, str] = {"limit": "100"}
    headers = {"X-API-Key": server.api_key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        while len(ids) < IDS_WANTED:
            answer = client.get("/api/orders", params=params).json()
            page = answer["data"]
            ids += [order["id"] for order in page]
            last_key = (answer.get("pagination") or {}).get("lastKey")
            if not page or not last_key:
                break
            params["lastKey"] = last_key
    return ids[:IDS_WANTED]


# -- request rates against the baselines ------------------------------------------------


def compare(
    bench: Bench,
    scenario: str,
    check: str,
    base: Server,
    hub: Server,
    script: str,
    *,
    path: str = "/",
    ids: tuple[Path, Path] | None = None,
    limit: float | None = None,
    note: str = "",
) -> None:
    """The same load on the baseline, then on orderhub, and orderhub's req/s as a ratio of
    the baseline's (with the ratio by CPU time per request in the note)."""
    b = bench.wrk(scenario, base, script, path=path, ids=ids[0] if ids else None)
    base_run = bench.last_run
    o = bench.wrk(scenario, hub, script, path=path, ids=ids[1] if ids else None, note=note)
    hub_run = bench.last_run
    assert base_run is not None and hub_run is not None
    bench.check(Check(check, o.rps, b.rps, "req/s", limit=limit, note=cpu_note(hub_run, base_run)))


def request_scenarios(bench: Bench, wanted: list[str]) -> None:
    """health, create, get, list, mix: orderhub beside the bare baselines, both servers
    running at once (an idle one costs nothing), each scenario on the baseline and then
    on orderhub, back to back."""
    with (
        running(servers.start_baseline("starlette_json", bench.fresh_dir("starlette"))) as bare,
        running(servers.start_baseline("fastapi_sqlite", bench.fresh_dir("fastapi"))) as base,
        running(servers.start_orderhub(bench.fresh_dir("orderhub"))) as hub,
    ):
        if "health" in wanted:
            bench.log("health")
            compare(
                bench,
                "health",
                "GET /health: orderhub / bare Starlette",
                bare,
                hub,
                "get_path.lua",
                path="/health",
            )
        if "create" in wanted:
            bench.log("create")
            compare(
                bench,
                "create",
                "create: orderhub / bare insert",
                base,
                hub,
                "create.lua",
                limit=0.25,
                note="worker on, same core",
            )
            settled = bench.settle(hub)
            bench.figure(
                "outbox drained after the create run in",
                "not within 180 s" if settled is None else f"{settled:.1f} s",
            )
        ids = (bench.ids_file(base, "fastapi"), bench.ids_file(hub, "orderhub"))
        if "get" in wanted:
            bench.log("get")
            compare(
                bench,
                "get",
                "get by id: orderhub / bare read",
                base,
                hub,
                "get.lua",
                ids=ids,
                limit=0.5,
            )
        if "list" in wanted:
            bench.log("list")
            compare(
                bench,
                "list limit=20",
                "list limit=20: orderhub / bare",
                base,
                hub,
                "get_path.lua",
                path="/api/orders?limit=20",
            )
        if "mix" in wanted:
            bench.log("mix")
            compare(
                bench,
                "mix 70/20/10",
                "mix 70/20/10: orderhub / bare",
                base,
                hub,
                "mix.lua",
                ids=ids,
            )
            bench.settle(hub)


# -- the outbox ---------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    counts: dict[str, int]


@contextmanager
def sampling(db_path: Path, every: float = 1.0) -> Iterator[list[Sample]]:
    """Delivery counts every `every` seconds, in a thread, while the block runs."""
    samples: list[Sample] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            samples.append(Sample(time.monotonic(), servers.delivery_counts(db_path)))
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def rate(samples: list[Sample], key: str) -> float:
    """Per second, between the first and the last sample."""
    if len(samples) < 2:
        return 0.0
    first, last = samples[0], samples[-1]
    span = last.at - first.at
    return (last.counts.get(key, 0) - first.counts.get(key, 0)) / span if span > 0 else 0.0


def busy_window(samples: list[Sample], integration: str | None) -> list[Sample]:
    """The samples from the last one before the first delivery (of `integration`) up to
    the first one with nothing left to deliver."""
    key = f"{integration}:delivered" if integration else "delivered"
    start = next((i for i, s in enumerate(samples) if s.counts.get(key, 0) > 0), None)
    if start is None:
        return []
    window = samples[max(0, start - 1) :]
    end = next(
        (i for i, s in enumerate(window) if servers.backlog(s.counts, integration) == 0),
        len(window) - 1,
    )
    return window[: end + 1]


def drain_scenario(bench: Bench) -> None:
    """A saturating create run (`saturate_seconds`, 60 by default) with the worker in the
    same process: how fast orders come in, how fast the worker delivers, and what is left
    10 s after the run."""
    bench.log(f"drain: {bench.saturate_seconds} s saturating create run")
    with running(servers.start_orderhub(bench.fresh_dir("drain"))) as hub:
        assert hub.db_path is not None
        with sampling(hub.db_path) as samples:
            result = bench.wrk(
                "create, saturating", hub, "create.lua", seconds=bench.saturate_seconds
            )
            during = list(samples)
        end = servers.delivery_counts(hub.db_path)
        time.sleep(10)
        after10 = servers.delivery_counts(hub.db_path)
        settled = bench.settle(hub)
        total = sum(v for k, v in end.items() if ":" not in k)
        per_order = total / result.requests if result.requests else 0.0
        delivering = rate(during, "delivered")
        bench.figure("saturating run: creates/s", fmt_number(result.rps))
        bench.figure(
            "saturating run: deliveries created/s",
            f"{fmt_number(result.rps * per_order)} ({per_order:.2f} per order)",
        )
        bench.figure(
            "saturating run: deliveries delivered/s during the run", fmt_number(delivering)
        )
        bench.figure("backlog at the end of the run", str(servers.backlog(end)))
        bench.figure("backlog 10 s after the run", str(servers.backlog(after10)))
        bench.figure(
            "outbox empty after the run in",
            "not within 180 s" if settled is None else f"{10 + settled:.1f} s",
        )
        bench.check(
            Check(
                "worker drain rate / create rate, during a saturating run (deliveries/s)",
                delivering,
                result.rps * per_order,
                "deliveries/s",
            ),
            AbsoluteCheck(
                f"backlog 10 s after a {bench.saturate_seconds} s saturating create run",
                servers.backlog(after10),
                "deliveries",
                0,
            ),
        )


def write_sheet(path: Path, rows: int, first: Sequence[str] = ()) -> None:
    """A sheet of `rows` orders in the CSV writer's own layout (other orders than the
    ones the bench creates, as a sheet that has been filling for a while), after a row
    at version 0 for each order id in `first` (so that every sheet delivery of those
    orders replaces a row at the top of the sheet)."""
    from orderhub.delivery.integrations.base import SHEET_COLUMNS

    path.parent.mkdir(parents=True, exist_ok=True)
    items = json.dumps(SEED_ORDER["items"])

    def cells(order_id: str, customer: str, version: str) -> list[str]:
        return [
            order_id,
            "2026-11-01T10:30:00.000Z",
            customer,
            "John Doe",
            "john.doe@example.com",
            items,
            "109.97",
            "usd",
            "paid",
            "succeeded",
            "",
            "2026-11-01T10:31:00.000Z",
            version,
        ]

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(SHEET_COLUMNS)
        writer.writerows(cells(order_id, "cust_abc123", "0") for order_id in first)
        writer.writerows(cells(str(uuid.uuid4()), f"cust_{n}", "2") for n in range(rows))


def stored_order_ids(db_path: Path) -> list[str]:
    """Every order id in an orderhub SQLite store, oldest first (read-only)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM orders ORDER BY id")]
    finally:
        conn.close()


def _drain_idle(bench: Bench, sheet_rows: int, *, updates: bool) -> tuple[float, float, int]:
    """A backlog made with the worker off (a create run on `serve --no-worker`), then
    drained by `serve` with its worker and no requests: (deliveries/s, sheet
    deliveries/s, deliveries). With `updates`, the sheet starts with an older row of
    every order created, so each sheet delivery replaces a row before the `sheet_rows`
    others instead of appending one."""
    data_dir = bench.fresh_dir(f"sheet-{sheet_rows}{'-updates' if updates else ''}")
    sheet = data_dir / "sheets" / "orders.csv"
    if sheet_rows and not updates:
        write_sheet(sheet, sheet_rows)
    with running(servers.start_orderhub(data_dir, args=("--no-worker",))) as hub:
        key = hub.api_key
        bench.wrk(
            "create, worker off", hub, "create.lua", seconds=min(bench.duration, 10), record=False
        )
    assert hub.db_path is not None
    if updates:
        write_sheet(sheet, sheet_rows, first=stored_order_ids(hub.db_path))
    total = servers.backlog(servers.delivery_counts(hub.db_path))
    with running(servers.start_orderhub(data_dir, name="worker", api_key=key)) as worker:
        assert worker.db_path is not None
        with sampling(worker.db_path, every=0.5) as samples:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if samples and servers.backlog(samples[-1].counts) == 0:
                    break
                time.sleep(0.5)
        overall = rate(busy_window(samples, None), "delivered")
        sheets = rate(busy_window(samples, "sheets"), "sheets:delivered")
    return overall, sheets, total


def sheet_scenario(bench: Bench) -> None:
    """Drain rate of an idle API's worker with an empty sheet and with a big one: once
    with rows appended (new orders), once with rows replaced at the top of the sheet
    (orders changed long after newer ones were written)."""
    rows = f"{bench.sheet_rows:,}"
    for updates in (False, True):
        kind = "rows replaced at the top" if updates else "rows appended"
        bench.log(f"sheet: drain with an empty sheet and a {rows}-row sheet, {kind}")
        empty, empty_sheets, n_empty = _drain_idle(bench, 0, updates=updates)
        big, big_sheets, n_big = _drain_idle(bench, bench.sheet_rows, updates=updates)
        bench.figure(
            f"idle drain, empty sheet, {kind}",
            f"{fmt_number(empty)} deliveries/s "
            f"({fmt_number(empty_sheets)} sheet rows/s), {n_empty} deliveries",
        )
        bench.figure(
            f"idle drain, {rows}-row sheet, {kind}",
            f"{fmt_number(big)} deliveries/s "
            f"({fmt_number(big_sheets)} sheet rows/s), {n_big} deliveries",
        )
        bench.check(
            Check(
                f"drain rate, {rows}-row sheet / empty sheet, {kind} (all deliveries)",
                big,
                empty,
                "deliveries/s",
                limit=0.8,
            ),
            Check(
                f"sheet delivery rate, {rows}-row sheet / empty sheet, {kind}",
                big_sheets,
                empty_sheets,
                "sheet deliveries/s",
                limit=0.8,
            ),
        )


# -- reads at 1,000 and 100,000 orders ----------------------------------------------------


def seeded_dir(bench: Bench, orders: int) -> Path:
    """A data directory whose store holds `orders` orders spread over 90 days (the
    metrics bench's seeding: the store's own row shape, rollups rebuilt)."""
    from sqlalchemy import create_engine

    from bench.metrics_bench import rebuild_rollups, seed_orders
    from orderhub.store.sql.migrate import upgrade_to_head

    data_dir = bench.fresh_dir(f"orders-{orders}")
    url = f"sqlite:///{data_dir / 'orderhub.db'}"
    upgrade_to_head(url)
    engine = create_engine(url)
    try:
        _expected, seconds = seed_orders(engine, orders, seed=11)
    finally:
        engine.dispose()
    rebuild_rollups(url)
    bench.log(f"  seeded {orders:,} orders in {seconds:.1f} s")
    return data_dir


def size_scenario(bench: Bench) -> None:
    """List and metrics latency at 1,000 and at 100,000 orders."""
    bench.log(f"size: list and metrics at {bench.small_orders:,} and {bench.big_orders:,} orders")
    paths = {
        "list limit=20": "/api/orders?limit=20",
        "metrics 24h": "/api/monitoring/metrics",
        "metrics 90d": "/api/monitoring/metrics?timeRange=90d",
    }
    results: dict[tuple[str, int], WrkResult] = {}
    for orders in (bench.small_orders, bench.big_orders):
        data_dir = seeded_dir(bench, orders)
        with running(servers.start_orderhub(data_dir, name=f"orderhub@{orders:,}")) as hub:
            for name, path in paths.items():
                results[(name, orders)] = bench.wrk(
                    f"{name} @ {orders:,} orders", hub, "get_path.lua", path=path
                )
    for name in paths:
        small, big = results[(name, bench.small_orders)], results[(name, bench.big_orders)]
        bench.check(
            Check(
                f"{name}: p50 at {bench.big_orders:,} / at {bench.small_orders:,} orders",
                big.p50_ms,
                small.p50_ms,
                "ms",
                limit=1.5,
                at_least=False,
            )
        )


# -- a slow email receiver ----------------------------------------------------------------


class _SmtpSink:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages = 0

    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages += 1
        return "250 OK"


@contextmanager
def smtp_receiver(delay: float) -> Iterator[tuple[int, _SmtpSink]]:
    from aiosmtpd.controller import Controller

    sink = _SmtpSink(delay)
    port = servers.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()


def smtp_scenario(bench: Bench) -> None:
    """Create p99 with email going to an SMTP receiver that answers at once and to one
    that takes 2 s per message."""
    bench.log("smtp: create with a fast and a 2 s SMTP receiver")
    p99 = {}
    for label, delay in (("fast", 0.0), ("slow 2 s", 2.0)):
        with (
            smtp_receiver(delay) as (port, sink),
            running(
                servers.start_orderhub(
                    bench.fresh_dir(f"smtp-{int(delay)}"),
                    name=f"orderhub, SMTP {label}",
                    EMAIL_BACKEND="smtp",
                    SMTP_URL=f"smtp://127.0.0.1:{port}",
                )
            ) as hub,
        ):
            p99[label] = bench.wrk(f"create, SMTP {label}", hub, "create.lua").p99_ms
            bench.figure(f"SMTP {label}: messages received during the run", str(sink.messages))
    bench.check(
        Check(
            "create p99, slow SMTP / fast SMTP",
            p99["slow 2 s"],
            p99["fast"],
            "ms",
            limit=1.2,
            at_least=False,
        )
    )


# -- PostgreSQL, one and two processes ----------------------------------------------------


@contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in the database at `base_url`, dropped afterwards; yields the
    DATABASE_URL that uses it."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_version(base_url: str) -> str:
    import psycopg

    with psycopg.connect(base_url, connect_timeout=3) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def workers_scenario(bench: Bench) -> None:
    """`serve --workers 2` against one process, on PostgreSQL (both pinned to the server
    core; PostgreSQL itself is not pinned)."""
    import subprocess
    import sys

    bench.log("workers: serve on PostgreSQL, --workers 1 and 2")
    rates: dict[int, dict[str, float]] = {}
    for workers in (1, 2):
        with pg_schema(bench.pg_url) as url:
            env = servers.clean_env(DATABASE_URL=url)
            subprocess.run(
                [sys.executable, "-m", "orderhub", "migrate"],
                env=env,
                check=True,
                capture_output=True,
            )
            with running(
                servers.start_orderhub(
                    bench.fresh_dir(f"pg-{workers}"),
                    name=f"orderhub pg --workers {workers}",
                    args=("--workers", str(workers)),
                    DATABASE_URL=url,
                )
            ) as hub:
                create = bench.wrk("create (PostgreSQL)", hub, "create.lua")
                ids = bench.ids_file(hub, f"pg-{workers}")
                get = bench.wrk("get (PostgreSQL)", hub, "get.lua", ids=ids)
                rates[workers] = {"create": create.rps, "get": get.rps}
    for name in ("create", "get"):
        bench.check(
            Check(
                f"PostgreSQL {name}: --workers 2 / --workers 1",
                rates[2][name],
                rates[1][name],
                "req/s",
                limit=1.3,
                note="both on one core (the other one runs wrk)",
            )
        )


# -- memory over a long run ---------------------------------------------------------------


def rss_scenario(bench: Bench) -> None:
    """RSS of the server during a `soak_seconds` mixed run: after the first third and at
    the end."""
    bench.log(f"rss: {bench.soak_seconds} s mixed run")
    with running(servers.start_orderhub(bench.fresh_dir("rss"))) as hub:
        ids = bench.ids_file(hub, "rss")
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def watch() -> None:
            started = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - started, hub.rss_kib()))
                stop.wait(1.0)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            bench.wrk("mix 70/20/10, soak", hub, "mix.lua", ids=ids, seconds=bench.soak_seconds)
        finally:
            stop.set()
            watcher.join()
    third = bench.soak_seconds / 3
    early = min(samples, key=lambda sample: abs(sample[0] - third))[1] if samples else 0
    end = samples[-1][1] if samples else 0
    bench.figure(
        "RSS during the soak (MiB)",
        ", ".join(
            f"{at:.0f}s: {kib / 1024:.0f}" for at, kib in samples[:: max(1, len(samples) // 6)]
        ),
    )
    bench.check(
        Check(
            f"RSS at {bench.soak_seconds} s / at {third:.0f} s",
            end / 1024,
            early / 1024,
            "MiB",
            limit=1.15,
            at_least=False,
        )
    )


REQUEST_SCENARIOS = ("health", "create", "get", "list", "mix")
SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "drain": drain_scenario,
    "sheet": sheet_scenario,
    "size": size_scenario,
    "smtp": smtp_scenario,
    "workers": workers_scenario,
    "rss": rss_scenario,
}
ALL = (*REQUEST_SCENARIOS, *SCENARIOS)
