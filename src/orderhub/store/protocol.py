"""What services may ask of a store. No SQL, no SQLAlchemy object, no boto3 type here.

Every backend (SQLite and PostgreSQL through `store/sql`, DynamoDB later) implements
these protocols; the contract tests in `tests/contract/` hold them all to one behaviour.

Shape, chosen so that DynamoDB can implement it with its own primitives:

* Reads are by key (`get`) or by an ordered index with a keyset cursor (`list_page`),
  never "scan and filter".
* Writes inside a `UnitOfWork` are an order put/update *with its pending events*,
  guarded by the order's version (a conditional write), committed together
  (`TransactWriteItems` in DynamoDB, one transaction in SQL). Nothing is written unless
  `commit()` is called.
* Idempotency records and API keys are single-item operations with conditions.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from orderhub.delivery.model import Delivery, DeliveryFilter, DueDelivery
from orderhub.orders.domain import Order, OrderEvent, OrderStatus


class StoreError(Exception):
    """The store could not do what was asked (unreachable, corrupt, ...)."""


class ConcurrencyConflict(StoreError):
    """The row changed since it was read (optimistic version check failed)."""


class AlreadyExists(StoreError):
    """An insert hit an existing key."""


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: OrderStatus | None = None
    customer_id: str | None = None


class OrderRepository(Protocol):
    async def get(self, order_id: uuid.UUID) -> Order | None: ...

    async def get_by_payment_intent(self, intent_id: str) -> Order | None:
        """By the provider's payment intent id (an index, never a scan)."""

    async def add(self, order: Order) -> None:
        """Insert a new order and its pending events. AlreadyExists if the id is taken."""

    async def save(self, order: Order) -> None:
        """Write a changed order and its pending events if its stored version is still
        `order.version`; then bump `order.version`. ConcurrencyConflict otherwise."""

    async def list_page(
        self, order_filter: OrderFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Order]:
        """Orders matching the filter with id < before_id, newest (highest id) first."""

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        """The order's events, oldest first."""

    async def with_unsent_refunds(self, changed_before: datetime, limit: int) -> list[Order]:
        """Orders holding refunds the provider never acknowledged, unchanged since
        `changed_before` (an index, never a scan)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: uuid.UUID
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyRepository(Protocol):
    async def add(self, record: ApiKeyRecord) -> None: ...

    async def find_active_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...

    async def list_all(self) -> list[ApiKeyRecord]: ...

    async def revoke(self, key_id: uuid.UUID, at: datetime) -> bool:
        """Revoke an active key; False if there is none with that id."""

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        """Record use (`last_used_at`)."""

    async def count_active(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """An error kept for operators (SPEC §11 `GET /api/monitoring/errors`)."""

    id: uuid.UUID
    at: datetime
    level: str
    service: str
    message: str
    error: str | None
    order_id: uuid.UUID | None


class ErrorLogRepository(Protocol):
    async def record(self, entry: ErrorEntry) -> None: ...

    async def recent(self, limit: int, since: datetime) -> list[ErrorEntry]:
        """Newest first."""


class WebhookEventRepository(Protocol):
    async def begin(self, event_id: str, event_type: str, now: datetime) -> bool:
        """Record a received event (insert if absent). False when it was already handled,
        so the caller answers 200 and changes nothing."""

    async def finish(self, event_id: str, outcome: str, error: str | None, now: datetime) -> None:
        """Mark handled: `applied`, `ignored` or `rejected`. An event whose handling failed
        is not finished, so Stripe's retry handles it again."""


class DeliveryRepository(Protocol):
    """The outbox. Deliveries are written with their events (by `OrderRepository.add/save`);
    these operations are the worker's and the operators'."""

    async def claim_due(
        self,
        now: datetime,
        worker_id: str,
        lease_until: datetime,
        limit: int,
        give_up_before: datetime | None = None,
    ) -> list[DueDelivery]:
        """Lease up to `limit` deliveries that are due (pending and due, or in flight with an
        expired lease), oldest first. A delivery is leased by one worker at a time.

        Taking over an expired lease counts the lost attempt; one whose event is older than
        `give_up_before` is made dead instead (a delivery that keeps killing its worker
        must not be retried forever)."""

    async def complete(
        self, delivery_id: uuid.UUID, worker_id: str, now: datetime, duration_ms: int
    ) -> bool:
        """Mark delivered and record the attempt; False if the lease was lost."""

    async def fail(
        self,
        delivery_id: uuid.UUID,
        worker_id: str,
        now: datetime,
        duration_ms: int,
        error: str,
        retry_at: datetime | None,
    ) -> bool:
        """Record a failed attempt: back to pending until `retry_at`, or dead when `retry_at`
        is None. False if the lease was lost."""

    async def release(self, delivery_ids: list[uuid.UUID], worker_id: str) -> None:
        """Give leased deliveries back untouched (graceful shutdown)."""

    async def renew(
        self, delivery_ids: list[uuid.UUID], worker_id: str, lease_until: datetime
    ) -> set[uuid.UUID]:
        """Extend the lease on those still leased by `worker_id`; returns them (the others
        were lost to an expired lease and must not be sent)."""

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None: ...

    async def list_page(
        self, delivery_filter: DeliveryFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Delivery]:
        """Newest first (by id)."""

    async def retry_dead(self, delivery_id: uuid.UUID, now: datetime) -> bool:
        """Put a dead delivery back to pending, due now; False unless it was dead."""

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery is due (for the worker's sleep)."""

    async def acquire_lease(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        """Hold the named lease until `until` unless another owner holds an unexpired one
        (a conditional write). Re-acquiring one's own lease extends it."""

    async def release_lease(self, name: str, owner: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str  # the health key: "sqlite", "stripe", "smtp", ...
    at: datetime
    ok: bool
    latency_ms: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    name: str
    checks: int
    successes: int
    last_at: datetime
    last_ok: bool


@dataclass(frozen=True, slots=True)
class OrderBuckets:
    """Orders created in a time range, each in exactly one bucket (SPEC §11)."""

    successful: int = 0
    failed: int = 0
    pending: int = 0
    cancelled: int = 0
    # paid minus refunded, in minor units, per currency (orders paid among them)
    revenue_minor: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class CallCounts:
    calls: int
    errors: int


class MonitoringRepository(Protocol):
    async def record_probes(self, results: list[ProbeResult]) -> None: ...

    async def probe_summaries(self, since: datetime) -> list[ProbeSummary]: ...

    async def record_provider_call(
        self, provider: str, operation: str, ok: bool, duration_ms: int, at: datetime
    ) -> None: ...

    async def order_buckets(self, start: datetime, end: datetime) -> OrderBuckets: ...

    async def call_counts(self, start: datetime, end: datetime) -> dict[str, CallCounts]:
        """Provider calls (by provider name) and delivery attempts (by integration)."""

    async def orders_by_status(self) -> dict[str, int]: ...

    async def outbox_backlog(self, now: datetime) -> tuple[int, float]:
        """Deliveries waiting (pending or in flight) and the age in seconds of the oldest."""

    async def prune(self, probes_before: datetime, errors_before: datetime) -> None:
        """Drop probe results and error-log rows older than the given times."""


class UnitOfWork(Protocol):
    @property
    def orders(self) -> OrderRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless `commit()` was called."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    scope: str
    key: str
    fingerprint: str
    resource_id: uuid.UUID
    status_code: int | None
    response_body: bytes | None
    locked_until: datetime | None
    expires_at: datetime


class IdempotencyRepository(Protocol):
    async def claim(
        self, candidate: IdempotencyRecord, now: datetime
    ) -> tuple[bool, IdempotencyRecord]:
        """Atomically: insert `candidate` if no live record (unexpired) exists for its
        (scope, key), or take over a record with the same fingerprint that has no response
        and whose lock has expired (keeping its resource id). Returns (claimed, record as
        stored now)."""

    async def complete(
        self, scope: str, key: str, status_code: int, body: bytes, expires_at: datetime
    ) -> None: ...

    async def release(self, scope: str, key: str, *, forget: bool) -> None:
        """Drop the lock (the next retry runs again); `forget` deletes the record."""

    async def purge_expired(self, now: datetime) -> int:
        """Delete records past their expiry; returns how many."""


class Store(Protocol):
    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def errors(self) -> ErrorLogRepository: ...

    @property
    def webhook_events(self) -> WebhookEventRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def monitoring(self) -> MonitoringRepository: ...

    @property
    def outbox_signal(self) -> asyncio.Event:
        """Set after a commit in this process wrote deliveries (wakes the local worker)."""

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork: ...

    async def server_secret(self, name: str) -> bytes:
        """A random secret shared by every instance on this store, created on first use."""

    async def ping(self) -> None:
        """A real round trip; raises StoreError when the store does not answer."""

    async def close(self) -> None: ...
