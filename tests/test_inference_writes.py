"""How inference writes its outputs: the per-row foreign-key checks are replaced by the lock the run
holds on its release (only where the role may turn the checks off), and every output keeps its parents."""

from __future__ import annotations

import gc
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from ingest.copy import ParentChecksOff
from ingest.inference import hold_release, only_new_objects_collected, write_outputs
from ingest.load import ingest_release
from ingest.tasks import Outputs
from tests.conftest import SDSS_RELEASE, gaia_slice


def _sdss_keys(conn, n: int) -> np.ndarray:
    return np.array(conn.execute(sa.text(
        "SELECT s.shard, s.source_id FROM healcat.source s JOIN healcat.release r USING (release_id) "
        "WHERE r.name = :r ORDER BY s.source_id DESC LIMIT :n"), {"r": SDSS_RELEASE, "n": n}).all(), dtype=np.int64)


def test_every_output_of_a_run_references_a_source_model_and_run(engine, catalog):
    with engine.connect() as conn:
        for table in ("prediction", "embedding", "inference_skip"):
            orphans = conn.scalar(sa.text(
                f"SELECT count(*) FROM healcat.{table} AS t "  # noqa: S608 (a fixed table name)
                "LEFT JOIN healcat.source AS s USING (shard, source_id) "
                "LEFT JOIN healcat.inference_run AS x USING (run_id) "
                "WHERE s.source_id IS NULL OR x.run_id IS NULL"))
            n = conn.scalar(sa.text(f"SELECT count(*) FROM healcat.{table} WHERE run_id = :r"),  # noqa: S608
                            {"r": catalog["run"].run_id})
            assert orphans == 0 and n > 0, table


def _delete_source(conn, key) -> int:
    return conn.execute(sa.text("DELETE FROM healcat.source WHERE shard = :s AND source_id = :i"),
                        {"s": int(key[0]), "i": int(key[1])}).rowcount


def test_no_source_of_a_release_being_inferred_can_be_deleted_or_rekeyed_until_the_run_ends(engine, catalog):
    with engine.connect() as run, engine.connect() as other:
        hold_release(run, catalog["sdss"].release_id)
        key = _sdss_keys(run, 8)[7]
        for statement in ("DELETE FROM healcat.source WHERE shard = :s AND source_id = :i",
                          "UPDATE healcat.source SET source_id = -source_id WHERE shard = :s AND source_id = :i"):
            with pytest.raises(sa.exc.OperationalError) as info, other.begin():
                other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                other.execute(sa.text(statement), {"s": int(key[0]), "i": int(key[1])})
            assert isinstance(info.value.orig, psycopg.errors.LockNotAvailable)
        with other.begin() as tx:  # other columns of the source, and other releases' sources, stay writable
            other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
            assert other.execute(sa.text("UPDATE healcat.source SET ra = ra WHERE shard = :s AND source_id = :i"),
                                 {"s": int(key[0]), "i": int(key[1])}).rowcount == 1
            gaia = other.execute(sa.text("SELECT shard, source_id FROM healcat.source WHERE release_id = :r LIMIT 1"),
                                 {"r": catalog["gaia"].release_id}).one()
            assert _delete_source(other, gaia) == 1
            tx.rollback()
        run.rollback()
        with other.begin() as tx:  # the lock went with the run's transaction
            assert _delete_source(other, key) == 1
            tx.rollback()


def test_a_delete_waiting_for_a_run_removes_the_outputs_the_run_committed(engine, catalog, tmp_path, scratch_release):
    """The run writes without per-row checks; a delete of one of its sources started meanwhile waits
    for the run's commit, then its cascade sees the run's outputs and leaves no orphan."""
    mapping, path = gaia_slice(tmp_path, 20, "infer-guard")
    release = ingest_release(mapping, engine, path)
    with engine.connect() as conn:
        keys = np.array(conn.execute(sa.text("SELECT shard, source_id FROM healcat.source WHERE release_id = :r "
                                             "ORDER BY source_id"), {"r": release.release_id}).all(), dtype=np.int64)
        model_id = conn.scalar(sa.text("SELECT model_id FROM healcat.model WHERE embedding_dim IS NULL LIMIT 1"))
    with engine.connect() as run, engine.connect() as other, ThreadPoolExecutor(1) as pool:
        run_id = run.scalar(sa.text("INSERT INTO healcat.inference_run (model_id, release_id, device) "
                                    "VALUES (:m, :r, 'test') RETURNING run_id"), {"m": model_id, "r": release.release_id})
        hold_release(run, release.release_id)
        pg = run.connection.driver_connection
        with ParentChecksOff(pg):
            write_outputs(pg, keys, Outputs(value=np.arange(len(keys), dtype=np.float64)), model_id, run_id)
        other_pid = other.scalar(sa.text("SELECT pg_backend_pid()"))
        deleting = pool.submit(lambda: other.execute(sa.text(
            "DELETE FROM healcat.source WHERE shard = :s AND source_id = :i"), {"s": int(keys[3, 0]), "i": int(keys[3, 1])}))
        deadline = time.monotonic() + 30
        waits_for_run = sa.text("SELECT :run = ANY(pg_blocking_pids(:other))")
        while not run.scalar(waits_for_run, {"run": run.scalar(sa.text("SELECT pg_backend_pid()")), "other": other_pid}):
            assert time.monotonic() < deadline, "the delete never waited for the run"
            time.sleep(0.02)
        assert not deleting.done()
        run.commit()
        assert deleting.result(timeout=30).rowcount == 1
        other.commit()
        left = run.scalar(sa.text("SELECT count(*) FROM healcat.prediction WHERE run_id = :r"), {"r": run_id})
        orphans = run.scalar(sa.text("SELECT count(*) FROM healcat.prediction p LEFT JOIN healcat.source s "
                                     "USING (shard, source_id) WHERE p.run_id = :r AND s.source_id IS NULL"), {"r": run_id})
    assert (left, orphans) == (len(keys) - 1, 0)


def test_a_role_without_the_privilege_keeps_every_foreign_key_check(conn):
    conn.execute(sa.text("CREATE ROLE healcat_test_writer NOLOGIN"))  # rolled back with the test
    conn.execute(sa.text("GRANT USAGE ON SCHEMA healcat TO healcat_test_writer; "
                         "GRANT INSERT ON healcat.prediction TO healcat_test_writer"))
    model_id = conn.scalar(sa.text("SELECT min(model_id) FROM healcat.model"))
    run_id = conn.scalar(sa.text("SELECT min(run_id) FROM healcat.inference_run"))
    conn.execute(sa.text("SET LOCAL ROLE healcat_test_writer"))
    pg = conn.connection.driver_connection
    checks = ParentChecksOff(pg)
    assert checks.allowed is False
    with pytest.raises(sa.exc.IntegrityError) as info, conn.begin_nested(), checks:
        conn.execute(sa.text("INSERT INTO healcat.prediction (shard, source_id, model_id, run_id, value) "
                             "VALUES (0, -1, :m, :r, 0.1)"), {"m": model_id, "r": run_id})
    assert isinstance(info.value.orig, psycopg.errors.ForeignKeyViolation)
    assert conn.scalar(sa.text("SELECT current_setting('session_replication_role')")) == "origin"


def _collector_walks(obj) -> bool:
    return any(o is obj for o in gc.get_objects())  # the generations a collection walks, not the frozen


def test_a_run_freezes_the_objects_alive_before_it_and_unfreezes_them_even_after_an_error():
    assert gc.get_freeze_count() == 0
    alive = [object()]
    with pytest.raises(RuntimeError, match="model failed"), only_new_objects_collected():
        made_in_the_run = [object()]
        assert not _collector_walks(alive) and _collector_walks(made_in_the_run)
        raise RuntimeError("model failed")
    assert gc.get_freeze_count() == 0 and _collector_walks(alive)
