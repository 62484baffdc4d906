"""`orderhub migrate` for the SQL stores: Alembic upgrade to head, idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from orderhub.store.sql.engine import store_error, sync_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = sync_url(database_url)
    return config


def head_revision() -> str:
    """The newest schema revision this version of orderhub knows."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None  # the migrations folder ships with the package
    return head


def current_revision(database_url: str) -> str | None:
    """The schema revision the database is at; None when it has no schema yet."""
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade_to_head(database_url: str) -> tuple[str | None, str]:
    """Upgrade to the newest revision; returns the revisions before and after. Raises
    StoreError (in words) when the database cannot be reached or changed."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        before = current_revision(database_url)
        command.upgrade(alembic_config(database_url), "head")
    except SQLAlchemyError as exc:
        raise store_error(exc, make_url(sync_url(database_url))) from exc
    return before, head_revision()
