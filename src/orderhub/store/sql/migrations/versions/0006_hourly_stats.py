"""Hourly rollups kept with every write, so metrics over any range read at most a few
thousand rows (SPEC §11: as fast at 100,000 orders as at 1,000).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hourly_stats",
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("metric", sa.String(80), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    # (filled from the stored rows by 0008, with the rules of monitoring.rollups)


def downgrade() -> None:
    op.drop_table("hourly_stats")
