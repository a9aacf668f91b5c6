"""How inference writes its outputs: the per-row foreign-key checks are replaced by locks the run
holds (only where the role may turn the checks off), and every output still has its parents."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from catalog.errors import HealcatError
from ingest.copy import ParentChecksOff
from ingest.inference import hold_sources
from tests.conftest import SDSS_RELEASE


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


def test_held_sources_cannot_be_deleted_until_the_run_ends(engine, catalog):
    with engine.connect() as run, engine.connect() as other:
        keys = _sdss_keys(run, 50)
        hold_sources(run.connection.driver_connection, keys[::-1])  # any order
        with pytest.raises(sa.exc.OperationalError) as info, other.begin():
            other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
            other.execute(sa.text("DELETE FROM healcat.source WHERE shard = :s AND source_id = :i"),
                          {"s": int(keys[7, 0]), "i": int(keys[7, 1])})
        assert isinstance(info.value.orig, psycopg.errors.LockNotAvailable)
        run.rollback()
        with other.begin() as tx:  # the lock went with the run's transaction; the delete is rolled back
            assert other.execute(sa.text("DELETE FROM healcat.source WHERE shard = :s AND source_id = :i"),
                                 {"s": int(keys[7, 0]), "i": int(keys[7, 1])}).rowcount == 1
            tx.rollback()


def test_a_source_gone_before_its_outputs_are_written_fails_the_run(engine, catalog):
    with engine.connect() as conn:
        keys = _sdss_keys(conn, 5)
        missing = np.vstack([keys, [keys[0, 0], -1]])
        with pytest.raises(HealcatError, match="1 of 6 sources read for this run were deleted"):
            hold_sources(conn.connection.driver_connection, missing)
        conn.rollback()


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
