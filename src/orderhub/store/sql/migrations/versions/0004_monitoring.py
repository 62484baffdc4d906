"""Monitoring: refunded amounts on orders (revenue), probe results, provider calls.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0")
        )
    # metrics read orders created in a range with everything they count in the index
    op.create_index(
        "ix_orders_metrics",
        "orders",
        [
            "created_at",
            "paid_at",
            "payment_status",
            "status",
            "currency",
            "total_minor",
            "refunded_minor",
        ],
    )
    op.create_table(
        "probe_results",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_probe_results_name_at", "probe_results", ["name", "at"])
    op.create_table(
        "provider_calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("operation", sa.String(40), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_provider_calls_at", "provider_calls", ["at"])


def downgrade() -> None:
    op.drop_table("provider_calls")
    op.drop_table("probe_results")
    op.drop_index("ix_orders_metrics", "orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("refunded_minor")
