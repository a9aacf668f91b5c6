"""How inference writes its outputs: the per-row foreign-key checks are replaced by the lock the run
holds on its release (only where the role may turn the checks off), and every output keeps its parents;
a run in several lanes writes what one lane writes, and a run that fails or dies leaves nothing visible."""

from __future__ import annotations

import gc
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from catalog.errors import HealcatError
from catalog.search import similar
from ingest.copy import ParentChecksOff
from ingest.inference import (MAX_LANES, _ahead, _lane_ranges, default_lanes, forget_runs, hold_release, only_new_objects_collected,
                              release_id_of, run_model, write_outputs)
from ingest.load import ingest_release
from ingest.tasks import Outputs
from tests.conftest import SDSS_RELEASE, gaia_slice, sessions, wait_until


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
        with other.begin() as tx:  # another run (a lane, another model) holds the same release at once
            other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
            hold_release(other, catalog["sdss"].release_id)
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
        run_pid = run.scalar(sa.text("SELECT pg_backend_pid()"))
        wait_until(lambda: sessions(engine, "pid = :other AND :run = ANY(pg_blocking_pids(pid))", other=other_pid,
                                    run=run_pid), "the delete waits for the run", poll_s=0.02)
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


def _outputs(engine, release: str) -> dict:
    """Every output of the runs on a release, by table, as sorted comparable rows."""
    with engine.connect() as conn:
        where = "JOIN healcat.inference_run AS x USING (run_id, model_id) JOIN healcat.release AS r USING (release_id) " \
                "WHERE r.name = :r ORDER BY 1, 2"
        return {
            "prediction": conn.execute(sa.text(
                "SELECT t.model_id, t.source_id, t.value, t.uncertainty, t.pdf_means, t.label FROM healcat.prediction AS t "
                + where), {"r": release}).all(),
            "embedding": conn.execute(sa.text(
                "SELECT t.model_id, t.source_id, t.vec FROM healcat.embedding AS t " + where), {"r": release}).all(),
            "skip": conn.execute(sa.text(
                "SELECT x.model_id, t.source_id, t.reason FROM healcat.inference_skip AS t "
                "JOIN healcat.inference_run AS x USING (run_id) JOIN healcat.release AS r USING (release_id) "
                "WHERE r.name = :r ORDER BY 1, 2"), {"r": release}).all(),
            "runs": conn.execute(sa.text(
                "SELECT x.model_id, x.n_predicted, x.n_skipped, x.finished_at IS NOT NULL FROM healcat.inference_run AS x "
                "JOIN healcat.release AS r USING (release_id) WHERE r.name = :r ORDER BY 1"), {"r": release}).all(),
        }


def _forget_release_runs(engine, release: str) -> None:
    with engine.begin() as conn:
        for model_id, run_ids in conn.execute(sa.text(
                "SELECT x.model_id, array_agg(x.run_id) FROM healcat.inference_run AS x JOIN healcat.release AS r "
                "USING (release_id) WHERE r.name = :r GROUP BY 1"), {"r": release}).all():
            forget_runs(conn, model_id, run_ids)


def _same_outputs(a: dict, b: dict) -> None:
    for x, y in zip(a["prediction"], b["prediction"], strict=True):
        assert x.model_id == y.model_id and x.source_id == y.source_id and x.label == y.label
        assert np.isclose(x.value, y.value, rtol=1e-5) and (x.pdf_means is None) == (y.pdf_means is None)
    for x, y in zip(a["embedding"], b["embedding"], strict=True):
        assert x.source_id == y.source_id and np.allclose(x.vec.to_numpy(), y.vec.to_numpy(), rtol=1e-4, atol=1e-6)
    assert a["skip"] == b["skip"] and a["runs"] == b["runs"]


@pytest.fixture
def sdss_1500(engine, catalog, tmp_path, scratch_release) -> str:
    """1,500 SDSS objects (galaxies, stars, quasars; some with a band missing) as the release scratch/lanes."""
    from tests.conftest import scratch_mapping, sdss_rows, write_csv

    rows = sdss_rows()[:1500]
    for row in rows[::100]:
        row["g"] = ""  # no g magnitude: skipped by both models, with the reason
    ingest_release(scratch_mapping(tmp_path, "lanes"), engine, file=write_csv(tmp_path / "lanes.csv", rows))
    return "scratch/lanes"


def test_lanes_write_exactly_what_one_lane_writes(engine, catalog, sdss_1500):
    one = run_model(engine, catalog["model"].name, sdss_1500, batch_size=64, lanes=1)
    by_one = _outputs(engine, sdss_1500)
    _forget_release_runs(engine, sdss_1500)
    four = run_model(engine, catalog["model"].name, sdss_1500, batch_size=64, lanes=4)
    by_four = _outputs(engine, sdss_1500)
    assert (one.lanes, four.lanes) == (1, 4)
    assert (four.n_predicted, four.n_skipped) == (one.n_predicted, one.n_skipped)
    assert one.n_predicted > 300 and one.n_skipped > 15
    _same_outputs(by_one, by_four)
    assert len(by_four["runs"]) == 2 and all(r[3] for r in by_four["runs"]), "both models' runs finished"
    predicted = {r.source_id for r in by_four["prediction"]}
    guarded = {r.source_id for r in by_four["skip"] if "what the model was trained on" in r.reason}  # the models' guard
    assert len(predicted | guarded) == 1500 - 15 and len(guarded - predicted) < 0.005 * 1500, "every source with ugriz"
    with engine.connect() as conn:  # the ranges: contiguous, covering the release; at least four batches each
        release_id = release_id_of(conn, sdss_1500)
        lo, hi = conn.execute(sa.text("SELECT min(source_id), max(source_id) FROM healcat.source WHERE release_id = :r"),
                              {"r": release_id}).one()
    ranges = _lane_ranges(engine, release_id, 8, 64)
    assert len(ranges) == 1500 // (4 * 64) and ranges[0][0] == lo and ranges[-1][1] == hi + 1
    assert all(a[1] == b[0] and b[1] - b[0] >= 256 for a, b in zip(ranges, ranges[1:]))
    assert _lane_ranges(engine, release_id, 8, 8192) == [None] == _lane_ranges(engine, release_id, 1, 64)


def test_a_lane_reads_at_most_its_queue_ahead_in_order_and_fails_where_its_input_does():
    pulled = []

    def items(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"item {i} is bad")
            pulled.append(i)
            yield i

    with ThreadPoolExecutor(1) as pool:
        got = []
        for item in _ahead(items(10), pool, 3):
            time.sleep(0.01)  # the reader runs ahead meanwhile, but no further than the queue
            assert len(pulled) <= item + 1 + 3
            got.append(item)
        assert got == list(range(10))
        got = []
        with pytest.raises(ValueError, match="item 4 is bad"):
            for item in _ahead(items(10, fail_at=4), pool, 3):
                got.append(item)
        assert got == [0, 1, 2, 3], "every item before the bad one, then its error"


class _ModelDies(Exception):
    pass


def test_a_run_that_fails_half_way_leaves_nothing_and_a_dead_runs_outputs_are_replaced(engine, catalog, sdss_1500,
                                                                                      monkeypatch, capsys):
    from catalog.cli import main

    from ingest.tasks.photoz import Photoz

    run_model(engine, catalog["classifier"].name, sdss_1500, batch_size=64, lanes=1)  # the prerequisite, finished
    classified = _outputs(engine, sdss_1500)
    calls, predict = [], Photoz.predict

    def dies_on_the_fifth_batch(self, *args):
        calls.append(1)
        if len(calls) == 5:
            raise _ModelDies("the model failed on a batch")
        return predict(self, *args)

    monkeypatch.setattr(Photoz, "predict", dies_on_the_fifth_batch)
    with pytest.raises(_ModelDies):
        run_model(engine, catalog["model"].name, sdss_1500, batch_size=64, lanes=4)
    assert _outputs(engine, sdss_1500) == classified, "the failed run left no row, not even its own"
    monkeypatch.undo()

    # A process that died between its lanes' commits: a run never finished, with some outputs committed.
    with engine.begin() as conn:
        release_id = release_id_of(conn, sdss_1500)
        dead = conn.scalar(sa.text("INSERT INTO healcat.inference_run (model_id, release_id, device) "
                                   "VALUES (:m, :r, 'died') RETURNING run_id"),
                           {"m": catalog["model"].model_id, "r": release_id})
        keys = np.array(conn.execute(sa.text("SELECT shard, source_id FROM healcat.source WHERE release_id = :r "
                                             "ORDER BY source_id LIMIT 100"), {"r": release_id}).all(), dtype=np.int64)
        vectors = np.random.default_rng(5).normal(size=(100, 16)).astype(np.float32)
        write_outputs(conn.connection.driver_connection, keys, Outputs(value=np.full(100, 99.0), embedding=vectors),
                      catalog["model"].model_id, dead)
    with engine.connect() as conn:  # readers never see an unfinished run's outputs
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.current_prediction WHERE run_id = :r"), {"r": dead}) == 0
    for mode in ("exact", "approx"):  # nor does a similarity search find its embeddings, not even a vector's own
        found = similar(vector=vectors[0], model=catalog["model"].name, k=5, mode=mode, engine=engine)
        assert len(found) == 5 and not set(found["source_id"]) & set(keys[:, 1].tolist()), mode
    capsys.readouterr()
    assert main(["model", "show", catalog["model"].name]) == 0  # the operator sees it
    assert f"run {dead} on {sdss_1500}, died, started " in (out := capsys.readouterr().out) and "not finished" in out
    run = run_model(engine, catalog["model"].name, sdss_1500, batch_size=64, lanes=4)
    after = _outputs(engine, sdss_1500)
    assert not any(r.value == 99.0 for r in after["prediction"]), "the dead run's outputs are gone"
    assert [r[:3] for r in after["runs"]] == sorted([r[:3] for r in classified["runs"]] +
                                                    [(catalog["model"].model_id, run.n_predicted, run.n_skipped)])
    assert sum(r.model_id == catalog["model"].model_id for r in after["prediction"]) == run.n_predicted > 300


def test_lanes_are_checked_where_they_are_given(engine, catalog, monkeypatch, capsys):
    from catalog.cli import main

    assert main(["infer", catalog["model"].name, "sdss/dr14-skyserver-10k", "--lanes", "0"]) != 0
    assert "lanes must be 1 to 12, not 0" in capsys.readouterr().err
    monkeypatch.setenv("HEALCAT_INFER_LANES", "many")
    with pytest.raises(HealcatError, match="HEALCAT_INFER_LANES='many': give a whole number of lanes"):
        default_lanes()
    monkeypatch.setenv("HEALCAT_INFER_LANES", "3")
    assert default_lanes() == 3
    monkeypatch.delenv("HEALCAT_INFER_LANES")
    assert 1 <= default_lanes() <= 8


def test_the_engine_gives_a_run_in_the_most_lanes_all_its_connections_at_once(engine):
    with ExitStack() as stack:  # a pool too small makes the last lanes' readers wait for the first lanes to end
        conns = [stack.enter_context(engine.connect()) for _ in range(2 * MAX_LANES + 1)]
        assert sum(c.scalar(sa.text("SELECT 1")) for c in conns) == 2 * MAX_LANES + 1


def test_a_lane_holds_the_release_while_a_delete_waits_for_the_lanes_before_it(engine, catalog):
    """A run's lanes hold the release one after another; a delete that comes between them waits for
    the first (FOR UPDATE against FOR KEY SHARE), and the next lane must not queue behind the delete:
    the first lane waits for the run, which waits for the next lane, which the server cannot see."""
    with engine.connect() as first, engine.connect() as deleter, engine.connect() as second, \
            ThreadPoolExecutor(1) as pool:
        hold_release(first, catalog["sdss"].release_id)
        key = _sdss_keys(first, 1)[0]
        deleter_pid = deleter.scalar(sa.text("SELECT pg_backend_pid()"))
        deleting = pool.submit(_delete_source, deleter, key)
        wait_until(lambda: sessions(engine, "pid = :p AND cardinality(pg_blocking_pids(pid)) > 0", p=deleter_pid),
                   "the delete waits for the first lane", poll_s=0.02)
        second.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        hold_release(second, catalog["sdss"].release_id)  # LockNotAvailable here would be the hang
        assert not deleting.done()
        second.rollback()
        first.rollback()
        assert deleting.result(timeout=30) == 1
        deleter.rollback()  # the source stays
