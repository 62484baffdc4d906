"""Payments: received webhook events and the operators' error log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("handled_at", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "error_log",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("service", sa.String(40), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("order_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_error_log_at", "error_log", ["at"])


def downgrade() -> None:
    op.drop_table("error_log")
    op.drop_table("webhook_events")
