"""The HNSW build: its memory (the estimate against pgvector's own account, the setting an operator sizes), one build at a time."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import sqlalchemy as sa

from catalog.errors import HealcatError, QueryError
from catalog.search.similar import similar
from ingest.inference import ensure_embedding_index, hnsw_build_bytes, hnsw_build_params
from tests.conftest import wait_until

MIB = 2**20


@pytest.mark.parametrize("dim", [16, 128])  # m = 16 and m = 32
def test_the_estimate_is_where_pgvector_says_the_graph_stops_fitting(engine, dim):
    """Built in 1 MB, pgvector reports after how many vectors its graph outgrew the memory: the
    estimate for that many vectors must be that memory, within 10%."""
    rng = np.random.default_rng(dim)
    notices = []
    with engine.connect() as conn:
        pg = conn.connection.driver_connection
        pg.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute(sa.text(f"CREATE TEMP TABLE hnsw_probe (v vector({dim})) ON COMMIT DROP"))
        conn.execute(sa.text("INSERT INTO hnsw_probe SELECT CAST(v AS vector) FROM unnest(CAST(:v AS text[])) AS v"),
                     {"v": [str(list(map(float, r))) for r in rng.normal(size=(3000, dim))]})
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1MB'; SET LOCAL max_parallel_maintenance_workers = 0"))
        m, ef_construction = hnsw_build_params(dim)
        conn.execute(sa.text(f"CREATE INDEX ON hnsw_probe USING hnsw (v vector_cosine_ops) "
                             f"WITH (m = {m}, ef_construction = {ef_construction})"))
        conn.rollback()
    fitted = [int(n.split("after ")[1].split()[0]) for n in notices if "no longer fits" in n]
    assert len(fitted) == 1, notices
    assert hnsw_build_bytes(fitted[0], dim) == pytest.approx(MIB, rel=0.1)


def test_the_build_memory_is_the_operators_and_a_short_one_is_named(engine, catalog, monkeypatch, caplog):
    model_id = catalog["model"].model_id
    index = f"ix_embedding_hnsw_{int(model_id)}"
    with engine.begin() as conn:
        dim = conn.scalar(sa.text("SELECT embedding_dim FROM healcat.model WHERE model_id = :m"), {"m": model_id})
        n = conn.scalar(sa.text("SELECT count(*) FROM healcat.embedding WHERE model_id = :m"), {"m": model_id})
        conn.execute(sa.text(f"DROP INDEX healcat.{index}"))
        probe = conn.scalar(sa.text("SELECT source_id FROM healcat.embedding WHERE model_id = :m LIMIT 1"), {"m": model_id})
    # as a `healcat infer` interrupted in its build leaves it (its run finished): approx says what builds it
    approx = dict(model=catalog["model"].name, version=catalog["model"].version, k=3, mode="approx", engine=engine)
    with pytest.raises(QueryError, match=r"has no valid HNSW index; use mode exact \(a run interrupted while it built "
                                         r"the index leaves none: `healcat infer MODEL RELEASE` again builds it"):
        similar(probe, **approx)
    assert hnsw_build_bytes(n, dim) > MIB  # so 1MB is too little for this model's vectors
    monkeypatch.setenv("HEALCAT_HNSW_BUILD_MEMORY", "a lot")
    with pytest.raises(HealcatError, match="HEALCAT_HNSW_BUILD_MEMORY='a lot' is not a PostgreSQL size"):
        ensure_embedding_index(engine, model_id, dim)
    monkeypatch.setenv("HEALCAT_HNSW_BUILD_MEMORY", "1MB")
    with caplog.at_level(logging.WARNING, logger="ingest.inference"):
        ensure_embedding_index(engine, model_id, dim)  # built all the same, on disk
    assert f"{n} vectors need about" in caplog.text and "HEALCAT_HNSW_BUILD_MEMORY is 1MB" in caplog.text
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                   "WHERE c.relname = :n"), {"n": index}) is True
    assert len(similar(probe, **approx)) == 3


def _tried_since(engine, since):
    """When a session last tried an advisory lock, if after ``since`` (the server's time), else None."""
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT max(query_start) FROM pg_stat_activity WHERE query_start > :t "
                                   "AND query LIKE '%pg_try_advisory_lock%' AND pid <> pg_backend_pid()"), {"t": since})


def test_one_build_of_an_index_at_a_time(engine, catalog):
    """A run's end and the release's index job may both find the index missing: the second waits for
    the first's build (a session advisory lock on the index's name) and then finds it there."""
    model_id = catalog["model"].model_id
    index = f"ix_embedding_hnsw_{int(model_id)}"
    with engine.begin() as conn:
        dim = conn.scalar(sa.text("SELECT embedding_dim FROM healcat.model WHERE model_id = :m"), {"m": model_id})
        conn.execute(sa.text(f"DROP INDEX healcat.{index}"))
    builds = []
    with engine.connect() as holder:  # as if another session were building it
        holder.execute(sa.text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": f"build:{index}"})
        second = threading.Thread(target=lambda: builds.append(ensure_embedding_index(engine, model_id, dim)))
        started = holder.scalar(sa.text("SELECT clock_timestamp()"))
        second.start()
        tried = wait_until(lambda: _tried_since(engine, started), "it tries the lock")
        wait_until(lambda: _tried_since(engine, tried), "it tries the lock again, having found it held")
        assert second.is_alive(), "it waits while the lock is held"
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT to_regclass(:n)"), {"n": f"healcat.{index}"}) is None
        holder.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": f"build:{index}"})
        holder.commit()
    second.join(120)
    assert not second.is_alive() and builds == [None]
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                   "WHERE c.relname = :n"), {"n": index}) is True
