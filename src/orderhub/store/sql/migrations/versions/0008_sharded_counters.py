"""Sharded counters (hourly rollups and gauges) replace `hourly_stats`, so no row is
written by every order change; filled from the stored rows with the rules of
`monitoring.rollups` (the one place they are written).

Revision ID: 0008
Revises: 0007
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from orderhub.kit.clock import from_epoch_ms
from orderhub.monitoring.rollups import BACKLOG, Counters, call_counters, order_counters
from orderhub.store.documents import order_from_document

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 1000


def _add(totals: dict[tuple[Any, ...], int], counters: Counters) -> None:
    for (hour, metric), value in counters.hourly.items():
        totals[("h", hour, metric)] = totals.get(("h", hour, metric), 0) + value
    for metric, value in counters.gauges.items():
        totals[("g", metric)] = totals.get(("g", metric), 0) + value


def upgrade() -> None:
    hourly = op.create_table(
        "hourly_counters",
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("metric", sa.String(80), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    gauges = op.create_table(
        "gauge_counters",
        sa.Column("metric", sa.String(80), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_deliveries_waiting", "deliveries", ["status", "created_at"])
    conn = op.get_bind()
    totals: dict[tuple[Any, ...], int] = {}
    for row in conn.execute(sa.text("SELECT document, version FROM orders")):
        document = row.document
        if isinstance(document, str):
            import json

            document = json.loads(document)
        _add(totals, order_counters(None, order_from_document(document, row.version)))
    waiting = conn.execute(
        sa.text("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'in_flight')")
    ).scalar_one()
    if waiting:
        totals[("g", BACKLOG)] = int(waiting)
    import uuid

    for query in (
        "SELECT provider AS name, ok AS ok, at FROM provider_calls",
        "SELECT integration AS name, outcome = 'delivered' AS ok, at FROM delivery_attempts",
    ):
        for row in conn.execute(sa.text(query)):
            _add(
                totals,
                call_counters(uuid.UUID(int=0), row.name, bool(row.ok), from_epoch_ms(row.at)),
            )
    hourly_rows = [
        {"hour": key[1], "metric": key[2], "shard": 0, "value": value}
        for key, value in totals.items()
        if key[0] == "h" and value
    ]
    gauge_rows = [
        {"metric": key[1], "shard": 0, "value": value}
        for key, value in totals.items()
        if key[0] == "g" and value
    ]
    for start in range(0, len(hourly_rows), BATCH):
        op.bulk_insert(hourly, hourly_rows[start : start + BATCH])
    if gauge_rows:
        op.bulk_insert(gauges, gauge_rows)
    op.drop_table("hourly_stats")


def downgrade() -> None:
    op.create_table(
        "hourly_stats",
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("metric", sa.String(80), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO hourly_stats (hour, metric, value) "
        "SELECT hour, metric, SUM(value) FROM hourly_counters GROUP BY hour, metric"
    )
    op.drop_index("ix_deliveries_waiting", "deliveries")
    op.drop_table("gauge_counters")
    op.drop_table("hourly_counters")
