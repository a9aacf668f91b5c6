"""Alembic environment: the URL comes from healcat's configuration, never from a file."""

from alembic import context
from sqlalchemy import create_engine, pool, text

from catalog.db import database_url, forward_notices
from catalog.models import SCHEMA, Base

config = context.config
#: Indexes made at run time, one per embedding model (ingest.inference.ensure_embedding_index).
RUNTIME_INDEX_PREFIX = "ix_embedding_hnsw_"


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "index" and name and name.startswith(RUNTIME_INDEX_PREFIX))


def run_migrations_online() -> None:
    url = config.attributes.get("url")
    if url is None:
        url = database_url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        forward_notices(conn.connection.driver_connection)
        # pgvector's library loaded in this session (a vector value read loads it): its hnsw.* settings are
        # then real ones, which a role that is not a superuser may SET in a function (migration 0001);
        # before, they are placeholders only a superuser may.
        vector = conn.scalar(text("SELECT format('%I.vector', n.nspname) FROM pg_extension AS e "
                                  "JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"))
        if vector:
            conn.execute(text(f"SELECT CAST('[1]' AS {vector})"))
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        conn.commit()
        context.configure(
            connection=conn,
            target_metadata=Base.metadata,
            version_table_schema=SCHEMA,
            include_schemas=True,
            include_name=lambda name, type_, parent: type_ != "schema" or name == SCHEMA,
            include_object=include_object,
        )
        with context.begin_transaction():
            before = context.get_context().get_current_revision()
            context.run_migrations()
            # what the application does once the schema is the newest, in the same transaction
            # (catalog.db.migrate: data a migration left for the current code to compute again)
            if (after := config.attributes.get("after_upgrade")) is not None:
                after(conn, before)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("healcat migrations run online only: use `healcat db up`")
run_migrations_online()
