"""The sandbox payment provider's intents and refunds, so they survive a restart and are
shared by every process on the store.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_intents",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("client_secret", sa.String(255), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("refunded", sa.BigInteger, nullable=False),
        sa.Column("latest_charge", sa.String(255), nullable=True),
        sa.Column("payment_method", sa.String(255), nullable=True),
        sa.Column("next_action", sa.JSON, nullable=True),
        sa.Column("last_error", sa.JSON, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_sandbox_intents_idempotency_key"),
    )
    op.create_table(
        "sandbox_refunds",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("intent_id", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("intent_id", "idempotency_key", name="uq_sandbox_refunds_key"),
    )


def downgrade() -> None:
    op.drop_table("sandbox_refunds")
    op.drop_table("sandbox_intents")
