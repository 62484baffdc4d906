"""SQL backends (SQLite, PostgreSQL) through SQLAlchemy 2 Core, schema by Alembic."""
