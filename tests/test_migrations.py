"""The migrations and the models agree, and the history runs down to base and back up."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from catalog import db
from catalog.models import Base
from tests.conftest import scratch_database


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
            assert db.current_revision(conn) == ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
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


#: Tables of per-object rows: they are distributed by ``shard`` (README, "Designed to scale out").
#: The others stay on the coordinator or become reference tables.
COORDINATOR_TABLES = {"alembic_version", "survey", "release", "model", "inference_run", "cluster", "cluster_age",
                      "job", "scheduled_ingest", "quarantine"}


def test_every_per_object_table_is_distributable_by_shard(conn):
    """What Citus asks of a table distributed by ``shard``, and of its colocated children: the column
    is a plain (not generated) NOT NULL smallint, and every primary key, unique constraint and unique
    index holds it (so a foreign key between per-object tables, which references one of them, joins
    on shard and colocates); no coordinator table holds per-object rows."""
    tables = set(conn.execute(sa.text(
        "SELECT relname FROM pg_class WHERE relnamespace = 'healcat'::regnamespace AND relkind IN ('r', 'p')")).scalars())
    per_object = tables - COORDINATOR_TABLES
    assert {"source", "photometry", "spec_redshift", "spectrum", "light_curve", "prediction", "embedding"} <= per_object
    holding_sources = set(conn.execute(sa.text(
        "SELECT c.relname FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid "
        "WHERE c.relnamespace = 'healcat'::regnamespace AND c.relkind IN ('r', 'p') AND a.attname = 'source_id'")).scalars())
    assert holding_sources <= per_object, "a coordinator table holds per-object rows"
    faults = []
    for table in sorted(per_object):
        rel = f"healcat.{table}"
        shard = conn.execute(sa.text(
            "SELECT format_type(atttypid, atttypmod) AS type, attnotnull, attgenerated FROM pg_attribute "
            "WHERE attrelid = CAST(:r AS regclass) AND attname = 'shard' AND NOT attisdropped"), {"r": rel}).first()
        if shard is None or shard.type != "smallint" or not shard.attnotnull or shard.attgenerated:
            faults.append(f"{table}: shard is {shard}")
            continue
        unique = conn.execute(sa.text(
            "SELECT pg_get_indexdef(i.indexrelid) AS ddl, i.indisprimary, 'shard' = ANY (array_agg(a.attname)) AS has_shard "
            "FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
            "WHERE i.indrelid = CAST(:r AS regclass) AND i.indisunique GROUP BY i.indexrelid, i.indisprimary"),
            {"r": rel}).all()
        if not any(u.indisprimary for u in unique):
            faults.append(f"{table}: no primary key")
        faults += [f"{table}: unique without shard: {u.ddl}" for u in unique if not u.has_shard]
    assert faults == []


def test_a_role_that_is_not_a_superuser_migrates_the_database_it_owns(engine, database_url, monkeypatch, capsys,
                                                                       caplog):
    """As on a managed PostgreSQL: healcat's role owns its database and is no superuser. Without the
    extension `db up` is one line saying what an administrator may run (it was a traceback); with it the
    migrations ran into `permission denied to set parameter "hnsw.ef_search"` (pgvector's settings are
    placeholders until its library is loaded in the session), and what they say an administrator should
    run (the reader's limits, advisory locks, large objects) was never shown."""
    from catalog.cli import main

    name = role = "healcat_not_superuser"
    url = database_url.set(database=name, username=role, password=None)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE")
        conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER {role}")
    monkeypatch.setenv("HEALCAT_DATABASE_URL", db.libpq_url(url))
    try:
        assert main(["db", "up"]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "permission denied to create extension" in error
        assert "an administrator may run CREATE EXTENSION vector in that database" in error
        superuser = sa.create_engine(database_url.set(database=name), poolclass=sa.pool.NullPool)
        with superuser.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION vector")
        superuser.dispose()
        caplog.set_level(logging.WARNING, logger="catalog.db")
        # the reader's password too (a server that asks for one, docker-compose): no CREATEROLE, so a warning
        monkeypatch.setenv("HEALCAT_READER_PASSWORD", "not-set-here")
        assert main(["db", "up"]) == 0, capsys.readouterr().err
        said = [r.getMessage() for r in caplog.records if r.name == "catalog.db"]
        assert any(m.startswith("healcat: not a superuser, so every role may take advisory locks") for m in said), said
        assert any("may not alter role healcat_reader" in m for m in said), said
        assert any(f"healcat: user {role} may not set the password of role healcat_reader" in m for m in said), said
        scratch = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with scratch.connect() as conn:
            assert db.current_revision(conn) == ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
            assert conn.scalar(sa.text("SELECT count(*) FROM healcat.cone_search(10, 10, 60)")) == 0
        scratch.dispose()
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")


def test_a_downgrade_below_0056_refuses_while_a_release_is_withdrawn(engine, database_url):
    """Superseded again, a withdrawn release would be back in its survey's order, out of place."""
    with scratch_database(engine, database_url, "healcat_withdrawn") as (url, scratch):
        db.migrate(url)
        with scratch.begin() as conn:
            conn.execute(sa.text("INSERT INTO healcat.survey (name) VALUES ('s')"))
            conn.execute(sa.text(
                "INSERT INTO healcat.release (survey_id, name, version, source_uri, checksum, mapping, status, "
                "withdrawn_at, withdrawn_reason) SELECT survey_id, 's/1', '1', 'x', 'x', '{}', 'withdrawn', now(), "
                "'wrong file' FROM healcat.survey"))
            head = db.current_revision(conn)
        with pytest.raises(RuntimeError, match=r"1 release\(s\) are withdrawn \(s/1\).*nothing was changed"):
            command.downgrade(db.alembic_config(url), "0055")
        with scratch.connect() as conn:
            assert db.current_revision(conn) == head and conn.scalar(sa.text("SELECT status FROM healcat.release")) == \
                "withdrawn"
