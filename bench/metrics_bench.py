"""Latency of `GET /api/monitoring/metrics` (SPEC §11) at 1,000 and 100,000 orders.

Per size: a fresh store (Alembic head), orders bulk-inserted straight into `orders` with
the row shape the store itself writes (`order_row`), created uniformly over the last 90
days; then the real ASGI app answers `timeRange=24h` and `timeRange=90d` through httpx,
beside a bare baseline (`GET /health`, the HTTP stack alone) measured in the same run.
Results are ratios to that baseline, so they compare across machines (SPEC: performance
is measured by bench/, never by timing asserts in tests).

    cd /work/main && .venv/bin/python bench/metrics_bench.py
    .venv/bin/python bench/metrics_bench.py --orders 1000,100000 --repeat 30 --explain
    .venv/bin/python bench/metrics_bench.py --json > results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from alembic import command
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select

from orderhub.app import create_app
from orderhub.bootstrap import build_container
from orderhub.delivery.model import Integration, delivery_targets
from orderhub.kit.clock import epoch_ms
from orderhub.kit.logging import configure_logging
from orderhub.kit.money import json_number
from orderhub.orders.domain import (
    Address,
    Amounts,
    EventSource,
    EventType,
    LineItem,
    Order,
    OrderChanges,
    OrderDraft,
    OrderEvent,
    OrderStatus,
    Refund,
    RefundStatus,
)
from orderhub.settings import Settings
from orderhub.store.sql import tables
from orderhub.store.sql.engine import sync_url
from orderhub.store.sql.mappers import order_row
from orderhub.store.sql.migrate import alembic_config, upgrade_to_head

API_KEY = "bench-key-0123456789abcdef"
AUTH = {"X-API-Key": API_KEY}
RANGES = ("24h", "90d")
DEFAULT_REPEAT = {"24h": 50, "90d": 20}
BASELINE_PATH = "/health"
BASELINE_EVERY = 4  # baseline requests after each timed metrics request
SPREAD = timedelta(days=90)
# Orders start this long after `now - 90d`, so a 90d request made later in the run
# still covers every seeded order (the app runs on the real clock).
EDGE_MARGIN = timedelta(minutes=30)
CHUNK = 5_000

CURRENCIES = (("usd", 0.6), ("eur", 0.3), ("jpy", 0.1))
# (low, high) item price in minor units; jpy has no minor unit
PRICES = {"usd": (500, 20_000), "eur": (500, 20_000), "jpy": (500, 30_000)}
SHIPPING = {"usd": 599, "eur": 499, "jpy": 800}
ADDRESS = Address("123 Main St", "New York", "NY", "10001", "USA")
PRODUCTS = ("Product A", "Product B", "Widget", "Gadget", "Gizmo", "Doohickey")


# -- seeding -----------------------------------------------------------------------------


def uuid7_at(moment_ms: int, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for `moment_ms`, as `new_id()` would have made it then (ids sort by time)."""
    value = (moment_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0b10 << 62 | rng.getrandbits(62)
    return uuid.UUID(int=value)


def _pick_currency(rng: random.Random) -> str:
    roll, acc = rng.random(), 0.0
    for currency, share in CURRENCIES:
        acc += share
        if roll < acc:
            return currency
    return CURRENCIES[-1][0]


def make_order(
    rng: random.Random, created_at: datetime, now: datetime
) -> tuple[Order, list[OrderEvent]]:
    """One order at `created_at`, moved through the domain's own methods to a realistic
    end state: ~70% paid (some fulfilled, ~12% of those partially and ~3% fully refunded),
    ~10% failed, ~10% pending, ~10% cancelled."""

    def later(moment: datetime, most_seconds: int) -> datetime:
        return min(moment + timedelta(seconds=rng.randint(1, most_seconds)), now)

    currency = _pick_currency(rng)
    low, high = PRICES[currency]
    items = tuple(
        LineItem(f"item_{k}", rng.choice(PRODUCTS), rng.randint(1, 3), rng.randint(low, high))
        for k in range(rng.randint(1, 3))
    )
    amounts = Amounts(currency, items, shipping_minor=rng.choice((0, SHIPPING[currency])))
    customer = rng.randrange(20_000)
    draft = OrderDraft(
        customer_id=f"cust_{customer:05d}",
        customer_email=f"customer{customer}@example.com",
        customer_name=f"Customer {customer}",
        amounts=amounts,
        shipping_address=ADDRESS,
        billing_address=ADDRESS,
        metadata=None,
    )
    order = Order.create(
        uuid7_at(epoch_ms(created_at), rng),
        draft,
        payment_provider="sandbox",
        payment_intent_id=f"pi_bench_{rng.getrandbits(64):016x}",
        now=created_at,
    )
    roll = rng.random()
    if roll < 0.70:
        paid_at = later(created_at, 600)
        order.record_payment_succeeded(paid_at, EventSource.WEBHOOK)
        kind = rng.random()
        if kind < 0.15:
            full = kind < 0.03
            amount = order.total_minor if full else rng.randint(1, order.total_minor - 1)
            at = later(paid_at, 7 * 86_400)
            refund = Refund(
                id=f"rf_{rng.getrandbits(64):016x}",
                amount_minor=amount,
                reason="requested_by_customer",
                status=RefundStatus.SUCCEEDED,
                created_at=at,
                provider_id=f"re_{rng.getrandbits(64):016x}",
            )
            order.record_refund(refund, at, EventSource.API)
        else:
            at = paid_at
            for step in (OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED):
                if rng.random() < 0.5:
                    break
                at = later(at, 2 * 86_400)
                order.apply_changes(OrderChanges(status=step), at)
    elif roll < 0.80:
        order.record_payment_failed(later(created_at, 600), EventSource.WEBHOOK)
    elif roll < 0.90:
        pass  # still pending
    else:
        order.cancel(later(created_at, 86_400))
    return order, order.take_events()


ROUTES = delivery_targets(list(Integration))


def call_rows(
    rng: random.Random, order: Order, events: list[OrderEvent], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`--with-calls`: the delivery attempts and payment-provider calls this order's life
    would have recorded (the rows `call_counts` reads). Every event goes to each
    integration its route names; 3% of deliveries fail once before they succeed; 1% of
    provider calls fail."""

    def at_ms(moment: datetime, most_ms: int) -> int:
        return min(epoch_ms(moment) + rng.randint(1, most_ms), epoch_ms(now))

    attempts = []
    for ev in events:
        for integration in ROUTES(ev.type):
            at = at_ms(ev.at, 5_000)
            outcomes = ["delivered"] if rng.random() >= 0.03 else ["failed", "delivered"]
            for outcome in outcomes:
                attempts.append(
                    {
                        "id": str(uuid7_at(at, rng)),
                        "delivery_id": str(uuid7_at(epoch_ms(ev.at), rng)),
                        "integration": integration.value,
                        "outcome": outcome,
                        "duration_ms": rng.randint(5, 400),
                        "error": None if outcome == "delivered" else "HTTP 503",
                        "at": at,
                    }
                )
                at = min(at + rng.randint(2_000, 30_000), epoch_ms(now))
    operations = [("create_intent", order.created_at)]
    by_type = {ev.type: ev.at for ev in events}
    if EventType.PAID in by_type:
        operations.append(("confirm_intent", by_type[EventType.PAID]))
    if EventType.PAYMENT_FAILED in by_type:
        operations.append(("confirm_intent", by_type[EventType.PAYMENT_FAILED]))
    operations += [("refund", r.created_at) for r in order.refunds]
    if order.cancelled_at is not None:
        operations.append(("cancel_intent", order.cancelled_at))
    provider = []
    for operation, moment in operations:
        at = at_ms(moment, 50) if moment < now else epoch_ms(now)
        provider.append(
            {
                "id": str(uuid7_at(at, rng)),
                "provider": order.payment_provider,
                "operation": operation,
                "ok": rng.random() >= 0.01,
                "duration_ms": rng.randint(50, 900),
                "at": at,
            }
        )
    return attempts, provider


@dataclass
class Expected:
    """What a range covering every seeded order must answer."""

    buckets: Counter[str] = field(default_factory=Counter)
    net_minor: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    call_errors: int = 0

    def add(self, order: Order) -> None:
        if order.paid_at is not None:
            self.buckets["successful"] += 1
            self.net_minor[order.currency] += order.total_minor - order.refunded_minor
        elif order.status == OrderStatus.CANCELLED:
            self.buckets["cancelled"] += 1
        elif order.payment_status.value == "failed":
            self.buckets["failed"] += 1
        else:
            self.buckets["pending"] += 1


def seed_orders(
    engine: Engine,
    count: int,
    seed: int,
    with_calls: bool = False,
    inserted: dict[sqlalchemy.Table, list[str]] | None = None,
) -> tuple[Expected, float]:
    """Insert `count` orders, oldest first (as they would have arrived), `CHUNK` orders per
    transaction (with `with_calls`, their delivery attempts and provider calls too).
    Returns what the 90d figures must be, and the seconds it took; `inserted` (if given)
    gets the id of every row written."""
    started = time.perf_counter()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    oldest = now - SPREAD + EDGE_MARGIN
    span_ms = epoch_ms(now) - epoch_ms(oldest) - 1_000
    offsets = sorted(rng.randrange(span_ms) for _ in range(count))
    expected = Expected()
    rows: dict[sqlalchemy.Table, list[dict[str, Any]]] = {
        tables.orders: [],
        tables.delivery_attempts: [],
        tables.provider_calls: [],
    }

    def flush() -> None:
        with engine.begin() as conn:
            for table, batch in rows.items():
                if batch:
                    conn.execute(insert(table), batch)
                    if inserted is not None:
                        inserted.setdefault(table, []).extend(row["id"] for row in batch)
                batch.clear()

    for offset in offsets:
        order, events = make_order(rng, oldest + timedelta(milliseconds=offset), now)
        expected.add(order)
        rows[tables.orders].append(order_row(order))
        if with_calls:
            attempts, provider = call_rows(rng, order, events, now)
            rows[tables.delivery_attempts] += attempts
            rows[tables.provider_calls] += provider
            expected.calls += len(attempts) + len(provider)
            expected.call_errors += sum(a["outcome"] != "delivered" for a in attempts)
            expected.call_errors += sum(not p["ok"] for p in provider)
        if len(rows[tables.orders]) >= CHUNK:
            flush()
    flush()
    return expected, time.perf_counter() - started


def rebuild_rollups(url: str) -> None:
    """The orders went in as raw rows, past the store's rollup writes: rebuild the hourly
    rollups with the migration that creates them from what is stored (its backfill)."""
    config = alembic_config(url)
    command.downgrade(config, "0007")
    command.upgrade(config, "head")


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Timing:
    orders: int
    path: str
    time_range: str | None
    samples: int
    median_ms: float
    p95_ms: float
    ratio: float | None = None  # median / baseline median, same app, same run


def p95(samples: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def _get(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await client.get(path, headers=headers)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed * 1000


async def _timed(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    warmup: int,
    repeat: int,
    baseline: list[float],
) -> list[float]:
    """`repeat` timings of `path`, each followed by `BASELINE_EVERY` timings of the bare
    baseline (appended to `baseline`): both see the same machine load, so their ratio
    holds even when something else runs on the machine."""
    for _ in range(warmup):
        await _get(client, path, headers)
        await _get(client, BASELINE_PATH, {})
    samples = []
    for _ in range(repeat):
        samples.append(await _get(client, path, headers))
        for _ in range(BASELINE_EVERY):
            baseline.append(await _get(client, BASELINE_PATH, {}))
    return samples


def bench_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    """A bench run's settings: no .env, the bench's API key, a rate limit never reached,
    quiet logs; `overrides` on top."""
    fields: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "api_keys": [API_KEY],
        "rate_limit_max": 100_000_000,
        "log_level": "warning",
        **overrides,
    }
    return Settings(_env_file=None, **fields)


@dataclass
class SizeResult:
    orders: int
    seed_seconds: float
    baseline: Timing
    metrics: list[Timing]
    checked: str
    calls_seeded: int = 0
    statements: list[tuple[str, Any]] = field(default_factory=list)


async def measure_size(
    settings: Settings, orders: int, expected: Expected, repeats: dict[str, int], warmup: int
) -> SizeResult:
    container = build_container(settings)
    app = create_app(settings, container)
    await container.start()
    statements: list[tuple[str, Any]] = []
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            # the figures first: the 90d range must hold every seeded order, exactly
            checked = await _check(client, expected)

            def capture(_c: Any, _cur: Any, statement: str, params: Any, *_rest: Any) -> None:
                if statement.lstrip().upper().startswith("SELECT"):
                    statements.append((statement, params))

            # every engine's statements (the store's engine is its own business)
            event.listen(Engine, "before_cursor_execute", capture)
            await client.get("/api/monitoring/metrics?timeRange=90d", headers=AUTH)
            event.remove(Engine, "before_cursor_execute", capture)

            base: list[float] = []
            samples = {
                time_range: await _timed(
                    client,
                    f"/api/monitoring/metrics?timeRange={time_range}",
                    AUTH,
                    warmup,
                    repeats[time_range],
                    base,
                )
                for time_range in RANGES
            }
            baseline = Timing(orders, BASELINE_PATH, None, len(base), _median(base), p95(base))
            timings = [
                Timing(
                    orders,
                    "/api/monitoring/metrics",
                    time_range,
                    len(times),
                    _median(times),
                    p95(times),
                    _median(times) / baseline.median_ms,
                )
                for time_range, times in samples.items()
            ]
    finally:
        await container.close()
    return SizeResult(orders, 0.0, baseline, timings, checked, statements=statements)


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


async def _check(client: httpx.AsyncClient, expected: Expected) -> str:
    response = await client.get("/api/monitoring/metrics?timeRange=90d", headers=AUTH)
    response.raise_for_status()
    data = response.json()["data"]
    want_orders = {
        "total": sum(expected.buckets.values()),
        **{k: expected.buckets[k] for k in ("successful", "failed", "pending", "cancelled")},
    }
    want_revenue = {
        currency: json_number(minor, currency)
        for currency, minor in sorted(expected.net_minor.items())
    }
    problems = []
    if data["orders"] != want_orders:
        problems.append(f"orders {data['orders']} != expected {want_orders}")
    calls = sum(i["calls"] for i in data["integrations"].values())
    errors = sum(i["errors"] for i in data["integrations"].values())
    if (calls, errors) != (expected.calls, expected.call_errors):
        problems.append(
            f"integration calls/errors {calls}/{errors} != expected "
            f"{expected.calls}/{expected.call_errors}"
        )
    if data["revenue"]["byCurrency"] != want_revenue:
        problems.append(f"revenue {data['revenue']['byCurrency']} != expected {want_revenue}")
    if problems:
        print("WARNING: 90d figures differ from the seeded data: " + "; ".join(problems))
        return "mismatch: " + "; ".join(problems)
    return "ok"


# -- EXPLAIN -----------------------------------------------------------------------------


def explain(engine: Engine, statements: list[tuple[str, Any]], runs: int) -> list[dict[str, Any]]:
    """The plan of each SELECT one 90d metrics request ran, and its median time when run
    straight on the driver (no app, no HTTP)."""
    sqlite = engine.dialect.name == "sqlite"
    out = []
    with engine.connect() as conn:
        for statement, params in statements:
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            plan_rows = conn.exec_driver_sql(prefix + statement, params).all()
            plan = [row[-1] if sqlite else row[0] for row in plan_rows]
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                conn.exec_driver_sql(statement, params).all()
                times.append((time.perf_counter() - started) * 1000)
            out.append(
                {
                    "sql": " ".join(statement.split()),
                    "plan": plan,
                    "median_ms": _median(times),
                }
            )
    return out


# -- the run -----------------------------------------------------------------------------


SEEDED = (tables.orders, tables.delivery_attempts, tables.provider_calls)


@contextmanager
def database(
    url: str | None, workdir: Path, orders: int
) -> Iterator[tuple[str, Engine, dict[sqlalchemy.Table, list[str]]]]:
    """A migrated store for one size: a fresh SQLite file in `workdir`, or the given
    database, whose seeded tables must be empty; the rows the bench inserts there (ids
    collected in the yielded dict) are deleted afterwards."""
    fresh = url is None
    url = url or f"sqlite:///{workdir / f'orders-{orders}.db'}"
    upgrade_to_head(url)
    engine = create_engine(sync_url(url))
    inserted: dict[sqlalchemy.Table, list[str]] = {}
    if not fresh:
        with engine.connect() as conn:
            counts = {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in SEEDED
            }
        if any(counts.values()):
            engine.dispose()
            raise SystemExit(
                f"{url.split('@')[-1]}: the bench needs these tables empty, they hold {counts}"
            )
    try:
        yield url, engine, inserted
    finally:
        for table, ids in inserted.items():
            for start in range(0, len(ids), CHUNK):
                with engine.begin() as conn:
                    conn.execute(delete(table).where(table.c.id.in_(ids[start : start + CHUNK])))
        engine.dispose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s.replace("_", "")) for s in args.orders.split(",") if s.strip()]
    repeats = {r: args.repeat or DEFAULT_REPEAT[r] for r in RANGES}
    results: list[SizeResult] = []
    plans: dict[int, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="orderhub-bench-") as tmp:
        for size in sizes:
            workdir = Path(tmp) / str(size)
            workdir.mkdir()
            with database(args.database_url, workdir, size) as (url, engine, inserted):
                expected, seconds = seed_orders(
                    engine,
                    size,
                    args.seed + size,
                    args.with_calls,
                    None if args.database_url is None else inserted,
                )
                rebuild_rollups(url)
                if engine.dialect.name == "postgresql":
                    with engine.begin() as conn:  # what autovacuum does soon after a bulk load
                        for table in SEEDED:
                            conn.exec_driver_sql(f"ANALYZE {table.name}")
                if not args.json:
                    print(f"seeded {size:,} orders in {seconds:.1f} s", file=sys.stderr, flush=True)
                settings = bench_settings(workdir, url)
                result = asyncio.run(measure_size(settings, size, expected, repeats, args.warmup))
                result.seed_seconds = seconds
                result.calls_seeded = expected.calls
                results.append(result)
                if args.explain:
                    plans[size] = explain(engine, result.statements, runs=10)
    return report(args, results, plans)


def report(
    args: argparse.Namespace, results: list[SizeResult], plans: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    scaling: dict[str, float] = {}
    if len(results) >= 2:
        small, large = results[0], results[-1]
        for time_range in RANGES:
            a = next(t for t in small.metrics if t.time_range == time_range)
            b = next(t for t in large.metrics if t.time_range == time_range)
            scaling[time_range] = b.median_ms / a.median_ms
    store = "sqlite" if args.database_url is None else args.database_url.split(":", 1)[0]
    return {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sqlalchemy.__version__,
            "store": store,
            "with_calls": args.with_calls,
        },
        "sizes": [
            {
                "orders": r.orders,
                "seed_seconds": round(r.seed_seconds, 2),
                "calls_seeded": r.calls_seeded,
                "check_90d": r.checked,
                "baseline": asdict(r.baseline),
                "metrics": [asdict(t) for t in r.metrics],
            }
            for r in results
        ],
        "scaling": {
            "from": results[0].orders if results else None,
            "to": results[-1].orders if results else None,
            "median_ratio": scaling,
        },
        "plans": {str(k): v for k, v in plans.items()},
    }


def print_table(data: dict[str, Any]) -> None:
    m = data["machine"]
    store = f"SQLite {m['sqlite']}" if m["store"] == "sqlite" else m["store"]
    seeded = "orders + delivery attempts + provider calls" if m["with_calls"] else "orders only"
    print(f"python {m['python']} · {m['platform']} · {m['cpus']} cpus · {store} · {seeded}")
    print()
    header = f"{'orders':>9}  {'timeRange':<9}  {'median ms':>9}  {'p95 ms':>8}  {'x baseline':>10}"
    print(header)
    print("-" * len(header))
    for size in data["sizes"]:
        base = size["baseline"]
        print(
            f"{size['orders']:>9,}  {'/health':<9}  {base['median_ms']:>9.2f}  "
            f"{base['p95_ms']:>8.2f}  {'1.0':>10}"
        )
        for t in size["metrics"]:
            print(
                f"{size['orders']:>9,}  {t['time_range']:<9}  {t['median_ms']:>9.2f}  "
                f"{t['p95_ms']:>8.2f}  {t['ratio']:>10.1f}"
            )
    print()
    scaling = data["scaling"]
    for time_range, ratio in scaling["median_ratio"].items():
        print(
            f"median at {scaling['to']:,} / median at {scaling['from']:,} orders, "
            f"timeRange={time_range}: x{ratio:.2f}"
        )
    checks = {size["orders"]: size["check_90d"] for size in data["sizes"]}
    print(
        "90d figures vs seeded data: "
        + ", ".join(f"{n:,} {c}" for n, c in checks.items())
        + " · seeding: "
        + ", ".join(f"{s['orders']:,} in {s['seed_seconds']:.1f} s" for s in data["sizes"])
    )
    for size, plans in data["plans"].items():
        print()
        print(f"SELECTs of one 90d request at {int(size):,} orders (run on the driver):")
        for p in plans:
            print(f"  {p['median_ms']:8.2f} ms  {p['sql'][:150]}")
            for line in p["plan"]:
                print(f"              plan: {line}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders", default="1000,100000", help="comma-separated sizes (default 1000,100000)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed requests per timeRange (default 50 for 24h, 20 for 90d)",
    )
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first")
    parser.add_argument(
        "--database-url",
        default=None,
        help="use this (empty) store instead of a fresh SQLite file per size",
    )
    parser.add_argument(
        "--with-calls",
        action="store_true",
        help="also seed the delivery attempts and provider calls the orders would have made",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed for the data")
    parser.add_argument(
        "--explain", action="store_true", help="also show each query's plan and raw time"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging("warning", "console")
    data = run(args)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print_table(data)


if __name__ == "__main__":
    main()
