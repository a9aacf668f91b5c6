"""The migrations and the models agree, and the history runs down to base and back up."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from catalog import db
from catalog.models import Base


def test_models_match_the_migrated_schema(engine, database_url):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_schemas": True,
            "version_table_schema": "healcat",
            "include_name": lambda name, type_, parent: type_ != "schema" or name == "healcat",
            "include_object": lambda obj, name, type_, *_: not (type_ == "index" and name.startswith("ix_embedding_hnsw_")),
        })
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    command.check(db.alembic_config(database_url))  # the same check as `alembic check`


def test_downgrade_to_base_and_upgrade_again(engine, database_url):
    url = database_url.set(database="healcat_migrations")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS healcat_migrations")
        conn.exec_driver_sql("CREATE DATABASE healcat_migrations")
    scratch = sa.create_engine(url)
    try:
        db.migrate(url)
        with scratch.connect() as conn:
            assert db.current_revision(conn) is not None
        command.downgrade(db.alembic_config(url), "base")
        with scratch.connect() as conn:
            assert db.current_revision(conn) is None
            left = conn.scalar(sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'healcat' AND c.relname NOT LIKE 'alembic_version%'"))
            functions = conn.scalar(sa.text(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'healcat'"))
        assert left == 0 and functions == 0
        db.migrate(url)
        with scratch.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM healcat.cone_search(10, 10, 60)")) == 0
    finally:
        scratch.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("DROP DATABASE healcat_migrations")


def test_the_current_views_show_every_column_of_their_tables(conn):
    """A view fixes its columns when created: a column added to the table later is missing from it."""
    def columns(name: str) -> list[str]:
        return conn.execute(sa.text("SELECT attname FROM pg_attribute WHERE attrelid = CAST(:r AS regclass) AND attnum > 0 "
                                    "AND NOT attisdropped ORDER BY attnum"), {"r": f"healcat.{name}"}).scalars().all()

    for table in ("source", "photometry", "spec_redshift", "source_xid", "spectrum"):
        assert columns(f"current_{table}") == columns(table), table
    assert "pmra_masyr" in columns("current_source")
