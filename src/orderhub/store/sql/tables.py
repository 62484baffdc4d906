"""Table definitions used by the repositories. The schema itself is made by Alembic
(`migrations/versions`); keep both in step."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("customer_id", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("payment_status", String(20), nullable=False),
    Column("payment_intent_id", String(255), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("paid_at", BigInteger, nullable=True),
    Column("refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("unsent_refunds", Integer, nullable=False, server_default="0"),
    Column("document", JSON, nullable=False),
    Index("ix_orders_status_id", "status", "id"),
    Index("ix_orders_customer_id", "customer_id", "id"),
    Index("ix_orders_payment_intent_id", "payment_intent_id"),
    Index("ix_orders_created_at", "created_at"),
    Index("ix_orders_unsent_refunds", "unsent_refunds", "updated_at"),
    Index(
        "ix_orders_metrics",
        "created_at",
        "paid_at",
        "payment_status",
        "status",
        "currency",
        "total_minor",
        "refunded_minor",
    ),
)

order_events = Table(
    "order_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), nullable=False),
    Column("order_version", Integer, nullable=False),
    Column("type", String(40), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("payment_status", String(20), nullable=False),
    Column("source", String(20), nullable=False),
    Column("order_document", JSON, nullable=True),
    Index("ix_order_events_order_id", "order_id", "id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(300), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("locked_until", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("handled_at", BigInteger, nullable=True),
    Column("outcome", String(20), nullable=True),
    Column("error", Text, nullable=True),
)

error_log = Table(
    "error_log",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("level", String(10), nullable=False),
    Column("service", String(40), nullable=False),
    Column("message", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("order_id", String(36), nullable=True),
    Index("ix_error_log_at", "at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("integration", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("event_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    UniqueConstraint("event_id", "integration", name="uq_deliveries_event_integration"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_order", "order_id", "id"),
    Index("ix_deliveries_status_id", "status", "id"),
    Index("ix_deliveries_waiting", "status", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("delivery_id", String(36), nullable=False),
    Column("integration", String(20), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("at", BigInteger, nullable=False),
    Index("ix_delivery_attempts_at", "at"),
    Index("ix_delivery_attempts_delivery", "delivery_id"),
)

probe_results = Table(
    "probe_results",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(40), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("latency_ms", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_probe_results_name_at", "name", "at"),
)

provider_calls = Table(
    "provider_calls",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("provider", String(20), nullable=False),
    Column("operation", String(40), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_provider_calls_at", "at"),
)

# Counters written with every order change, delivery transition and provider call
# (`monitoring.rollups`), one row per shard: hourly "orders:<bucket>:<currency>",
# "revenue:<currency>", "calls:<name>", "errors:<name>"; gauges "status:<status>", "backlog".
# Writers use shards 0-15; the fold (`counters.fold_counters`) moves them into shard -1
# and adds the same amounts to `daily_counters`, so a folded row is in both tables and
# an unfolded one (shard >= 0, found through the partial index) in the hourly one alone.
hourly_counters = Table(
    "hourly_counters",
    metadata,
    Column("hour", BigInteger, primary_key=True),
    Column("metric", String(80), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
    Index(
        "ix_hourly_counters_unfolded",
        "hour",
        sqlite_where=text("shard >= 0"),
        postgresql_where=text("shard >= 0"),
    ),
)

# The folded hourly counters summed per UTC day (`day` is the day's first millisecond).
daily_counters = Table(
    "daily_counters",
    metadata,
    Column("day", BigInteger, primary_key=True),
    Column("metric", String(80), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

gauge_counters = Table(
    "gauge_counters",
    metadata,
    Column("metric", String(80), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("until", BigInteger, nullable=False),
)

# Signed-in sessions of the operator console (`store/sql/sessions.py`).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("identity", String(400), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

# The sandbox payment provider's state (`store/sql/sandbox.py`).
sandbox_intents = Table(
    "sandbox_intents",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("client_secret", String(255), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(40), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("refunded", BigInteger, nullable=False),
    Column("latest_charge", String(255), nullable=True),
    Column("payment_method", String(255), nullable=True),
    Column("next_action", JSON, nullable=True),
    Column("last_error", JSON, nullable=True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("idempotency_key", name="uq_sandbox_intents_idempotency_key"),
)

sandbox_refunds = Table(
    "sandbox_refunds",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("intent_id", String(255), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(40), nullable=False),
    Column("reason", String(40), nullable=True),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("intent_id", "idempotency_key", name="uq_sandbox_refunds_key"),
)

# Reconciliation runs (`store/sql/reconcile.py`), kept 30 days.
reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Column("checked", Integer, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("checkpoint", BigInteger, nullable=True),
    Index("ix_reconcile_runs_started_at", "started_at"),
)

# Alerts to operators until they are sent (`store/sql/alerts.py`).
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("message", Text, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_alerts_due", "status", "next_attempt_at"),
)
