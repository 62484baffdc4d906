"""Orders with refunds reserved but never confirmed by the provider, for the resender.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("unsent_refunds", sa.Integer, nullable=False, server_default="0")
        )
    op.create_index("ix_orders_unsent_refunds", "orders", ["unsent_refunds", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_unsent_refunds", "orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("unsent_refunds")
