"""Similarity search from Python: the SQL functions ``healcat.similar_sources`` and
``healcat.similar_to_vector`` are the one place the per-model HNSW index is queried."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog.errors import QueryError
from catalog.search.results import to_table


def similar(
    source_id: int | None = None,
    *,
    vector: np.ndarray | None = None,
    model: str = "photoz-sdss",
    k: int = 10,
    version: str | None = None,
    engine: sa.Engine | None = None,
) -> Table:
    """The ``k`` sources nearest to a source (itself excluded) or a vector in ``model``'s embedding space.

    Columns: source_id, release, object_id, ra [deg], dec [deg], distance (cosine distance, 0..2).
    """
    from catalog.db import engine as default_engine

    if (source_id is None) == (vector is None):
        raise QueryError("similar: give exactly one of source_id or vector")
    if not isinstance(k, (int, np.integer)):
        raise QueryError(f"similar: k must be an integer, got {k!r}")
    params = {"model": model, "k": int(k), "version": version}
    if source_id is not None:
        query = sa.text("SELECT * FROM healcat.similar_sources(:source_id, :model, :k, :version)")
        params["source_id"] = int(source_id)
    else:
        from pgvector.sqlalchemy import Vector

        query = sa.text("SELECT * FROM healcat.similar_to_vector(:vector, :model, :k, :version)").bindparams(
            sa.bindparam("vector", type_=Vector())
        )
        params["vector"] = np.asarray(vector, dtype=np.float32)
    with (engine or default_engine()).connect() as conn:
        try:
            return to_table(conn.execute(query, params))
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "22023":  # invalid_parameter_value from the SQL function
                raise QueryError(str(exc.orig).splitlines()[0]) from None
            raise
