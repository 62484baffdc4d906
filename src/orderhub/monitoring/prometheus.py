"""`GET /metrics`: Prometheus text. Request and delivery counters are this process's;
backlog and order counts are read from the store at each scrape, so they are right
whatever number of processes share it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from orderhub.kit.clock import Clock
from orderhub.monitoring.figures import orders_by_status, outbox_backlog
from orderhub.orders.domain import OrderStatus
from orderhub.store.protocol import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
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
        self.backlog = Gauge(
            "orderhub_outbox_backlog",
            "Deliveries waiting (pending or in flight)",
            registry=self.registry,
        )
        self.oldest = Gauge(
            "orderhub_outbox_oldest_pending_age_seconds",
            "Age of the oldest waiting delivery",
            registry=self.registry,
        )
        self.orders = Gauge(
            "orderhub_orders", "Orders by status", ["status"], registry=self.registry
        )
        self.limiter_failures = Gauge(
            "orderhub_rate_limit_backend_failures",
            "Requests let through because the rate-limit counter store failed (this process)",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "other"  # clients pick methods freely
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def observe_delivery(self, integration: str, outcome: str) -> None:
        self.deliveries.labels(integration, outcome).inc()

    async def render(self, store: Store, clock: Clock, limiter_failures: int = 0) -> bytes:
        waiting, oldest = await outbox_backlog(store, clock.now())
        self.backlog.set(waiting)
        self.oldest.set(oldest)
        self.limiter_failures.set(limiter_failures)
        counts = await orders_by_status(store)
        for status in OrderStatus:  # every status, so one that empties reads 0
            self.orders.labels(status.value).set(counts.get(status.value, 0))
        return generate_latest(self.registry)
