"""The index job (ingest/indexing.py): every table of the catalog analysed."""

from __future__ import annotations

import sqlalchemy as sa

from ingest.indexing import TABLES, refresh_indexes
from tests.conftest import GAIA_RELEASE


def test_the_index_job_analyses_every_table_of_the_schema(engine, catalog):
    with engine.connect() as conn:
        tables = set(conn.execute(sa.text(
            "SELECT relname FROM pg_class WHERE relnamespace = 'healcat'::regnamespace AND relkind IN ('r', 'p') "
            "AND relname <> 'alembic_version'")).scalars())
    assert {"light_curve", "spectrum", "label", "rotation_period", "stellar_mass", "inference_skip", "cluster",
            "cluster_age", "source", "embedding"} <= tables
    assert sorted(TABLES) == sorted(tables)
    result = refresh_indexes(engine, GAIA_RELEASE)  # no embeddings: analyses only
    assert result == {"release": GAIA_RELEASE, "analyzed": list(TABLES), "hnsw_models": []}
    with engine.connect() as conn:
        analysed = set(conn.execute(sa.text(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'healcat' AND last_analyze IS NOT NULL")).scalars())
    assert tables <= analysed
