"""`orderhub migrate` for the SQL stores: Alembic upgrade to head, idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from orderhub.store.sql.engine import store_error, sync_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = sync_url(database_url)
    return config


def upgrade_to_head(database_url: str) -> None:
    """Raises StoreError (in words) when the database cannot be reached or changed."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        command.upgrade(alembic_config(database_url), "head")
    except SQLAlchemyError as exc:
        raise store_error(exc, make_url(sync_url(database_url))) from exc
