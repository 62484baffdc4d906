"""What services may ask of a store. No SQL, no SQLAlchemy object, no boto3 type here.

Every backend (SQLite and PostgreSQL through `store/sql`, DynamoDB through
`store/dynamodb`) implements these protocols; the contract tests in `tests/contract/`
hold them all to one behaviour. Backends are plumbing: which deliveries an event gets
(`delivery.model.fan_out`), what an order change adds to the counters
(`monitoring.rollups`), how a lost lease is taken over (`delivery.model.claimed`) are
decided by callers, or by the shared bases in `store/base.py`, and backends persist what
they are handed.

Shape, chosen so that DynamoDB can implement it with its own primitives:

* Reads are by key (`get`) or by an index with a keyset cursor (`list_page`), never
  "scan and filter"; each docstring names the index it reads.
* Writes inside a `UnitOfWork` (an order added or saved, with its events, its
  deliveries and its counters) are staged and written together by `commit()`
  (`TransactWriteItems` in DynamoDB, one transaction in SQL), guarded by the order's
  version. A conflict (`ConcurrencyConflict`, `AlreadyExists`) may surface at `add`,
  `save` or `commit`, so callers retry the whole unit of work (`store.update_order`).
* Single-item records (idempotency keys, webhook event ids, leases, API keys, the
  sandbox provider's intents and refunds) are one conditional write each, outside any
  unit of work.
* No item is written by every order change: counters carry a shard.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Self

from orderhub.delivery.model import Delivery, DeliveryAttempt, DeliveryFilter, DueDelivery
from orderhub.monitoring.rollups import CallRecord, OrderFacts
from orderhub.orders.domain import Order, OrderEvent, OrderStatus

# One conditional delivery change: (before, after, the attempt it records or None).
Transition = tuple[Delivery, Delivery, DeliveryAttempt | None]


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
    """An order's reads and staged writes inside one unit of work."""

    async def get(self, order_id: uuid.UUID) -> Order | None:
        """By id (the primary key; strongly consistent)."""

    async def peek(self, order_id: uuid.UUID) -> Order | None:
        """By id like `get`, for reading only: not remembered by the unit of work, so it
        cannot be saved through it (and costs no copy of the order)."""

    async def peek_with_history(self, order_id: uuid.UUID) -> tuple[Order, list[OrderEvent]] | None:
        """`peek` and `history` of one order (None: no such order), read together: on SQL
        in one read transaction, so the history is the one of the order returned."""

    async def get_by_payment_intent(self, intent_id: str) -> Order | None:
        """By the provider's payment intent id, strongly consistent right after the
        order's commit (SQL: unique index in the same table; DynamoDB: an item keyed by
        the intent id, written in the order's transaction)."""

    async def add(self, order: Order) -> None:
        """Stage a new order with its pending events. AlreadyExists (here or at commit)
        if the id is taken."""

    async def save(self, order: Order) -> None:
        """Stage a changed order with its pending events, guarded by `order.version` (the
        version it was read at, in this unit of work); the version is bumped. Raises
        ConcurrencyConflict here or at commit when the stored version moved on."""

    async def list_page(
        self, order_filter: OrderFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Order]:
        """Up to `limit` orders matching the filter with id < before_id, newest (highest
        id) first. Indexes: none -> all orders by id; `status` -> orders by status;
        `customer_id` (with or without `status`) -> orders by customer, the status
        applied after the read (the page is still filled to `limit`)."""

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        """The order's events, oldest first (events by order)."""

    async def with_unsent_refunds(self, changed_before: datetime, limit: int) -> list[Order]:
        """Orders holding refunds the provider never acknowledged, unchanged since
        `changed_before`, least recently changed first (a sparse index of such orders)."""


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


ADD_BATCH = 50  # deliveries added in one write (one DynamoDB transaction)


class DeliveryRepository(Protocol):
    """The outbox. Deliveries are written with their events (by the unit of work that
    commits an order change); these operations are the worker's and the operators'.
    Transitions are computed by `delivery.model` and written here conditionally."""

    async def due(self, now: datetime, limit: int) -> list[Delivery]:
        """Up to `limit` deliveries that are pending and due, or in flight with an
        expired lease, earliest due first (index: waiting deliveries by due time)."""

    async def transition(
        self, before: Delivery, after: Delivery, attempt: DeliveryAttempt | None = None
    ) -> bool:
        """Write `after` if the stored delivery still has `before`'s status, lease owner
        and lease expiry (a conditional write), with `attempt` recorded and the counters
        it moves (backlog, calls/errors) in the same write. False if it changed."""

    async def transition_many(self, changes: Sequence[Transition]) -> list[bool]:
        """Each `(before, after, attempt)` as `transition` writes it, conditional on its
        own `before`, in as few store round trips as the store allows (SQL: one
        transaction); returns, in order, whether each was written. A change that lost
        its condition does not stop the others."""

    async def load(self, deliveries: list[Delivery]) -> list[DueDelivery]:
        """Each delivery with its event and the order as of that event (by key)."""

    async def renew(
        self, delivery_ids: list[uuid.UUID], worker_id: str, lease_until: datetime
    ) -> set[uuid.UUID]:
        """Extend the lease on those still leased by `worker_id`; returns them (the others
        were lost to an expired lease and must not be sent)."""

    async def release(self, delivery_ids: list[uuid.UUID], worker_id: str) -> None:
        """Give leased deliveries back untouched, pending and due as before (a graceful
        shutdown)."""

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None:
        """By id (primary key)."""

    async def add(self, deliveries: list[Delivery]) -> None:
        """Insert new pending deliveries of events already stored (a resync), each naming
        its event (`event_id` of order `order_id`), with the backlog they add, all or
        nothing per batch of at most `ADD_BATCH`."""

    async def list_page(
        self, delivery_filter: DeliveryFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Delivery]:
        """Newest first (by id). Indexes: `order_id` -> deliveries by order; else
        `status` -> deliveries by status; else all by id; the other filters (integration,
        `created_since`) are applied after the read, the page still filled to `limit`."""

    async def attempts(self, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
        """A delivery's attempts, oldest first."""

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery is due (for the worker's sleep)."""

    async def oldest_waiting_at(self) -> datetime | None:
        """Creation time of the oldest delivery pending or in flight (backlog age)."""


class LeaseRepository(Protocol):
    """Named leases: one holder at a time across every process on the store."""

    async def acquire(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        """Hold the named lease until `until` unless another owner holds an unexpired one
        (a conditional write). Re-acquiring one's own lease extends it."""

    async def release(self, name: str, owner: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ReconcileRun:
    """One reconciliation run, kept for operators (30 days)."""

    id: uuid.UUID
    started_at: datetime
    finished_at: datetime
    checked: int  # orders read from the provider, events listed, refunds re-sent
    changed: int  # of those, how many changed an order
    errors: int
    error: str | None  # the first errors, in words
    # Events of the provider are applied up to this moment (the provider's clock); the
    # next run lists from a little before it. None: no event was ever listed.
    checkpoint: datetime | None


class ReconcileRunRepository(Protocol):
    async def record(self, run: ReconcileRun) -> None:
        """Keep a finished run (insert)."""

    async def latest(self) -> ReconcileRun | None:
        """The run that started last (strongly consistent)."""

    async def recent(self, since: datetime, limit: int) -> list[ReconcileRun]:
        """Runs started since `since`, newest first."""

    async def prune(self, before: datetime) -> None:
        """Drop runs started before `before` (a no-op where the backend expires them
        itself, e.g. DynamoDB's TTL)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """A message to operators (a delivery went dead, an integration is down), kept until
    it is sent: the alerts' own small outbox."""

    id: uuid.UUID
    subject: str  # what it is about: an integration ("email") or a backend ("smtp")
    kind: str  # delivery_dead, integration_down
    message: str
    channel: str  # email, webhook
    status: str  # pending, sent, dead
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime


class AlertRepository(Protocol):
    """Written by whoever raises an alert; read and updated by the one sender holding the
    store lease `alerts` (so updates need no condition)."""

    async def add(self, alerts: list[Alert]) -> None: ...

    async def due(self, now: datetime, limit: int) -> list[Alert]:
        """Pending alerts due by `now`, oldest first."""

    async def save(self, alert: Alert) -> None:
        """Replace the stored alert's state (status, attempts, next attempt, error)."""


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
class ProviderCall:
    id: uuid.UUID
    provider: str
    operation: str
    ok: bool
    duration_ms: int
    at: datetime


class MonitoringRepository(Protocol):
    """What monitoring reads. Sums over time come from the hourly counters; the raw rows
    answer only for the partial hours at the ends of a range (`monitoring.rollups`)."""

    async def record_probes(self, results: list[ProbeResult]) -> None: ...

    async def probe_summaries(self, since: datetime) -> list[ProbeSummary]:
        """Per probe name since `since` (probe results by name and time)."""

    async def record_provider_call(self, call: ProviderCall) -> None:
        """Keep the call and count it in its hour (same write)."""

    async def hourly_totals(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...]
    ) -> dict[str, int]:
        """Hourly counters of the whole hours in [start, end) whose metric starts with one
        of `prefixes`, summed over hours and shards (counters by hour)."""

    async def hourly_series(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...], step_ms: int
    ) -> dict[int, dict[str, int]]:
        """The same counters summed per step of `step_ms` (a whole number of hours; steps
        aligned to the epoch, so days are UTC days) instead of over the whole range: keyed
        by the step's start (`hour - hour % step_ms`), then by metric."""

    async def gauges(self) -> dict[str, int]:
        """Every gauge (orders by status, backlog), summed over shards."""

    async def orders_created(self, start_ms: int, end_ms: int) -> list[OrderFacts]:
        """Orders created in [start, end) (orders by creation hour); used for the partial
        hours at a range's ends only."""

    async def calls_between(self, start_ms: int, end_ms: int) -> list[CallRecord]:
        """Provider calls and delivery attempts made in [start, end) (by hour of the
        attempt); partial hours only."""

    async def prune(self, probes_before: datetime, errors_before: datetime) -> None:
        """Drop probe results and error-log rows older than the given times (a no-op where
        the backend expires them itself, e.g. DynamoDB's TTL)."""

    async def compact(self, now: datetime) -> int:
        """Fold what the backend keeps apart to stay free of hot keys into fewer rows:
        DynamoDB's counter journal into its totals, SQL's counter shards of past hours
        into one row per hour and metric. Returns how many entries were folded; no figure
        changes. Safe to run in several workers at once."""


class UnitOfWork(Protocol):
    @property
    def orders(self) -> OrderRepository: ...

    async def commit(self) -> None:
        """Write everything staged, all or nothing. ConcurrencyConflict / AlreadyExists
        when a guarded write lost a race (nothing is written then)."""

    async def rollback(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None:
        """Discard what was staged unless `commit()` was called."""


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


@dataclass(frozen=True, slots=True)
class SandboxIntent:
    """A payment intent of the sandbox provider, as the store keeps it (the sandbox is
    Stripe-shaped: `created` in epoch seconds, amounts in minor units)."""

    id: str
    client_secret: str
    idempotency_key: str  # the key it was created with (`order:<id>`), unique
    amount: int
    currency: str
    status: str
    created: int
    metadata: dict[str, str]
    refunded: int = 0  # minor units refunded so far
    latest_charge: str | None = None
    payment_method: str | None = None
    next_action: dict[str, Any] | None = None
    last_error: dict[str, str] | None = None  # Stripe's last_payment_error (code, message, ...)
    version: int = 1


@dataclass(frozen=True, slots=True)
class SandboxRefund:
    id: str
    intent_id: str
    idempotency_key: str  # unique per intent
    amount: int
    currency: str
    status: str
    reason: str | None
    created: int  # epoch seconds


class SandboxRepository(Protocol):
    """The sandbox provider's intents and refunds, shared by every process on the store.
    Reads are by key and strongly consistent; every write is conditional."""

    async def get_intent(self, intent_id: str) -> SandboxIntent | None:
        """By id (primary key)."""

    async def intent_for_key(self, idempotency_key: str) -> SandboxIntent | None:
        """The intent created with this idempotency key (SQL: unique index; DynamoDB: a
        pointer item written with the intent)."""

    async def put_intent(self, intent: SandboxIntent, expected_version: int | None) -> None:
        """`expected_version` None: insert; AlreadyExists when its id or its idempotency
        key is taken. Otherwise replace the stored intent if its version is
        `expected_version` (the caller bumps `intent.version`); ConcurrencyConflict when it
        moved on or is absent."""

    async def add_refund(
        self, refund: SandboxRefund, intent: SandboxIntent, expected_version: int
    ) -> None:
        """Insert the refund and replace its intent (guarded as in `put_intent`), all or
        nothing: AlreadyExists when the intent has a refund with that idempotency key,
        ConcurrencyConflict when the intent moved on."""

    async def get_refund(self, intent_id: str, idempotency_key: str) -> SandboxRefund | None:
        """By (intent, idempotency key)."""

    async def list_refunds(self, intent_id: str) -> list[SandboxRefund]:
        """The intent's refunds, oldest first (created, then id)."""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in session of the operator console. The browser holds a random token;
    the store keeps only its SHA-256 (`token_hash`), and the SHA-256 of the API key the
    session was opened with (`key_hash`), so a revoked key ends its sessions."""

    token_hash: str
    key_hash: str
    identity: str  # the caller the key names
    created_at: datetime
    expires_at: datetime  # idle expiry, moved forward as the session is used


class ConsoleSessionRepository(Protocol):
    """Single items keyed by `token_hash`; expired ones are dropped (TTL, or deleted as
    new ones are added) and never returned."""

    async def add(self, session: ConsoleSession) -> None: ...

    async def get(self, token_hash: str, now: datetime) -> ConsoleSession | None:
        """The session, strongly consistent, unless it has expired by `now`."""

    async def extend(self, token_hash: str, expires_at: datetime) -> None:
        """Move the idle expiry of an existing session (no effect on a deleted one)."""

    async def delete(self, token_hash: str) -> None:
        """Sign-out: the session is gone at once (no effect when it is already)."""


class Store(Protocol):
    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def errors(self) -> ErrorLogRepository: ...

    @property
    def webhook_events(self) -> WebhookEventRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def leases(self) -> LeaseRepository: ...

    @property
    def monitoring(self) -> MonitoringRepository: ...

    @property
    def sandbox(self) -> SandboxRepository: ...

    @property
    def console_sessions(self) -> ConsoleSessionRepository: ...

    @property
    def reconcile_runs(self) -> ReconcileRunRepository: ...

    @property
    def alerts(self) -> AlertRepository: ...

    @property
    def outbox_signal(self) -> asyncio.Event:
        """Set after a commit in this process wrote deliveries (wakes the local worker)."""

    def unit_of_work(self) -> UnitOfWork: ...

    async def server_secret(self, name: str) -> bytes:
        """A random secret shared by every instance on this store, created on first use."""

    async def ping(self) -> None:
        """A real round trip; raises StoreError when the store does not answer."""

    async def close(self) -> None: ...
