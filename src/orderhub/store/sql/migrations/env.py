"""Alembic environment: runs migrations with a synchronous engine for the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from orderhub.store.sql.tables import metadata

config = context.config
url = config.attributes["database_url"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
