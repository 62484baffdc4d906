"""`GET /metrics`: Prometheus text.

Two kinds of figures:
- counted by the processes themselves: HTTP requests and latency, delivery attempts, and
  the requests let through because the rate-limit store failed. With one process they are
  that process's; with several (`serve --workers N`) every process writes them into a
  shared directory (prometheus-client's multiprocess mode) and a scrape, whichever
  process answers it, sums them over all of them.
- read from the store at each scrape (outbox backlog, oldest waiting delivery, orders by
  status): one read per scrape, so they are right whatever number of processes share the
  store, and never summed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from orderhub.kit.clock import Clock
from orderhub.monitoring.figures import orders_by_status, outbox_backlog
from orderhub.orders.domain import OrderStatus
from orderhub.store.protocol import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class StoreFigures:
    """A collector of the figures one scrape read from the store."""

    def __init__(self, waiting: int, oldest_age: float, by_status: Mapping[str, int]) -> None:
        self.waiting = waiting
        self.oldest_age = oldest_age
        self.by_status = by_status

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "orderhub_outbox_backlog",
            "Deliveries waiting (pending or in flight)",
            value=self.waiting,
        )
        yield GaugeMetricFamily(
            "orderhub_outbox_oldest_pending_age_seconds",
            "Age of the oldest waiting delivery",
            value=self.oldest_age,
        )
        orders = GaugeMetricFamily("orderhub_orders", "Orders by status", labels=["status"])
        for status in OrderStatus:  # every status, so one that empties reads 0
            orders.add_metric([status.value], self.by_status.get(status.value, 0))
        yield orders


async def read_store_figures(store: Store, clock: Clock) -> StoreFigures:
    """The store's figures for one scrape: its gauges read once, for the backlog and for
    the orders by status alike, plus the oldest waiting delivery."""
    gauges = await store.monitoring.gauges()
    waiting, oldest = await outbox_backlog(store, clock.now(), gauges)
    return StoreFigures(waiting, oldest, await orders_by_status(store, gauges))


class Metrics:
    """The process-counted figures. `multiprocess_dir`: the directory every process of
    one `serve --workers N` counts into (`PROMETHEUS_MULTIPROC_DIR`, which must be in the
    environment before the process starts, as prometheus-client reads it on import);
    None for a process on its own."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "orderhub_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "orderhub_http_request_duration_seconds",
            "HTTP request latency by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "orderhub_deliveries",
            "Delivery attempts by integration and outcome (this process's worker)",
            ["integration", "outcome"],
            registry=self.registry,
        )
        self.limiter_failures = Gauge(
            "orderhub_rate_limit_backend_failures",
            "Requests let through because the rate-limit counter store failed "
            "(this process, or the running processes of one serve together)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "other"  # clients pick methods freely
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def observe_delivery(self, integration: str, outcome: str) -> None:
        self.deliveries.labels(integration, outcome).inc()

    def observe_limiter_failure(self) -> None:
        self.limiter_failures.inc()

    async def render(self, store: Store, clock: Clock) -> bytes:
        figures = CollectorRegistry(auto_describe=False)
        figures.register(await read_store_figures(store, clock))
        return self._counted() + generate_latest(figures)

    def _counted(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        every_process = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(every_process, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(every_process)

    def close(self) -> None:
        """This process is done: its live gauges leave the sum (its counters stay)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
