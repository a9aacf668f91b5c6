"""The last step of a release's job chain: fresh planner statistics and every model's HNSW index.

Loading and inference write many rows in single transactions; autovacuum would analyse the
tables eventually, but the first queries after a release should get good plans at once.
"""

from __future__ import annotations

import sqlalchemy as sa

from catalog.models import TABLES
from ingest import progress
from ingest.inference import ensure_embedding_index
from ingest.registry import release_id_of


def refresh_indexes(engine: sa.Engine, release: str) -> dict:
    """ANALYZE every table of the catalog (:data:`TABLES`) and build the HNSW index of each model with
    embeddings in ``release``."""
    with engine.connect() as conn:
        release_id = release_id_of(conn, release)
        models = conn.execute(sa.text(
            "SELECT m.model_id, m.embedding_dim FROM healcat.model AS m WHERE m.embedding_dim IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM healcat.embedding AS e JOIN healcat.source AS s USING (shard, source_id) "
            "WHERE e.model_id = m.model_id AND s.release_id = :r) ORDER BY m.model_id"), {"r": release_id}).all()
    steps = len(TABLES) + len(models)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for i, table in enumerate(TABLES, 1):
            conn.exec_driver_sql(f"ANALYZE healcat.{table}")
            progress.report(i, steps)
    for i, model in enumerate(models, len(TABLES) + 1):
        ensure_embedding_index(engine, model.model_id, model.embedding_dim)
        progress.report(i, steps)
    return {"release": release, "analyzed": list(TABLES), "hnsw_models": [m.model_id for m in models]}
