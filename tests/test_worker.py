"""The job queue and workers: no duplicate jobs, retries with backoff, dead workers' jobs requeued."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy.io import ascii

from catalog.cli import main
from ingest import queue
from ingest.mapping import load_mapping
from ingest.worker import Worker, queue_index
from tests.conftest import ADVISORY_WAIT, SDSS, gaia_slice, scratch_mapping, sdss_rows, sessions, wait_until, write_csv


def _small_sdss(folder: Path, n_rows: int) -> Path:
    lines = load_mapping(SDSS).input_path().read_text().splitlines()
    path = folder / f"sdss-{n_rows}.csv"
    path.write_text("\n".join(lines[: n_rows + 1]) + "\n")
    return path


def _jobs(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT job_id, kind, status, attempts, args, result, error, run_after > now() "
                                    "AS later FROM healcat.job ORDER BY job_id")).all()


def test_ingest_job_runs_once_and_queues_inference(engine, catalog, tmp_path, scratch_release, capsys):
    mapping, csv = scratch_mapping(tmp_path, "worker"), _small_sdss(tmp_path, 40)
    assert main(["enqueue", "ingest", str(mapping), "--file", str(csv)]) == 0
    assert main(["enqueue", "ingest", str(mapping), "--file", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "queued" in out and "already queued or running" in out
    assert len(_jobs(engine)) == 1, "an identical live job is not queued twice"

    assert Worker(engine, name="test").run(once=True) == 4  # the ingest, the two inferences it queued, the index
    ingest_job, class_job, infer_job, index_job = _jobs(engine)
    assert (ingest_job.kind, ingest_job.status, ingest_job.attempts) == ("ingest", "done", 1)
    assert ingest_job.result["row_counts"]["source"] == 40 and not ingest_job.result["already_loaded"]
    assert ingest_job.result["status"] == "published"
    assert (class_job.kind, class_job.status, infer_job.kind, infer_job.status) == ("infer", "done", "infer", "done")
    assert class_job.args == {"model": catalog["classifier"].name, "version": catalog["classifier"].version,
                              "release": "scratch/worker"}, "the classifier first: photo-z needs its labels"
    assert infer_job.args == {"model": catalog["model"].name, "version": catalog["model"].version,
                              "release": "scratch/worker"}
    assert (index_job.kind, index_job.status, index_job.args) == ("index", "done", {"release": "scratch/worker"})
    with engine.connect() as conn:
        parents = conn.execute(sa.text("SELECT parent_job_id FROM healcat.job ORDER BY job_id")).scalars().all()
        progress = conn.execute(sa.text("SELECT progress_done, progress_total FROM healcat.job ORDER BY job_id")).all()
    assert parents == [None, ingest_job.job_id, ingest_job.job_id, class_job.job_id], "ingest -> infer -> index"
    assert tuple(progress[0]) == (40, 40), "the ingest reported its rows out of the file's (counted: a small CSV)"
    assert progress[3].progress_done == progress[3].progress_total > 0, "the index job reported its steps"
    with engine.connect() as conn:
        n_galaxies = conn.scalar(sa.text(
            "SELECT count(*) FROM healcat.spec_redshift z JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE r.name = 'scratch/worker' AND z.spec_class = 'GALAXY'"))
    assert infer_job.result["n_predicted"] == n_galaxies > 0
    assert infer_job.result["lanes"] == 1, "40 sources: too few for a second lane"
    assert [p.progress_done for p in progress[1:3]] == [40, 40], "each inference reported the rows it read"


def test_a_job_that_cannot_succeed_fails_at_once(engine, catalog, tmp_path, scratch_release):
    header_only = tmp_path / "header.csv"
    header_only.write_text(load_mapping(SDSS).input_path().read_text().splitlines()[0] + "\n")
    with engine.begin() as conn:
        queue.enqueue(conn, "infer", {"model": "photoz-sdss", "release": "no/such-release"})
        queue.enqueue(conn, "ingest", {"mapping": str(scratch_mapping(tmp_path, "header")), "file": str(header_only)})
    assert Worker(engine, name="test").run(once=True) == 2
    infer, ingest = _jobs(engine)
    assert (infer.status, infer.attempts) == ("failed", 1) and "no release named 'no/such-release'" in infer.error
    assert (ingest.status, ingest.attempts) == ("failed", 1) and "header.csv: no data rows" in ingest.error


def test_failing_job_backs_off_then_fails_and_can_be_retried(engine, catalog, tmp_path, scratch_release, capsys):
    mapping = scratch_mapping(tmp_path, "missing")
    with engine.begin() as conn:
        job_id, _ = queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": "/nonexistent/file.csv"},
                                  max_attempts=2)
    worker = Worker(engine, name="test")
    assert worker.run(once=True) == 1
    (job,) = _jobs(engine)
    assert (job.status, job.attempts, job.later) == ("queued", 1, True)
    assert "/nonexistent/file.csv: no such file" in job.error
    assert main(["jobs", "--format", "csv"]) == 0  # a queued job's error is its last attempt's, and says so
    assert ascii.read(capsys.readouterr().out, format="csv")["error"][0].startswith("attempt 1: MissingInputError")
    with engine.begin() as conn:  # skip the backoff
        conn.execute(sa.text("UPDATE healcat.job SET run_after = now()"))
    second = engine.connect()
    running = queue.claim(second, "second")  # attempt 2 under way: the error shown is attempt 1's
    assert main(["jobs", "--format", "csv"]) == 0
    listed = ascii.read(capsys.readouterr().out, format="csv")
    assert (listed["status"][0], listed["error"][0][:10]) == ("running", "attempt 1:")
    second.invalidate()  # that worker goes away (its session, and the job's lock, with it)
    second.close()
    with engine.begin() as conn:  # the job queued again as it was
        conn.execute(sa.text("UPDATE healcat.job SET status = 'queued', attempts = 1 WHERE job_id = :j"),
                     {"j": running.job_id})
    assert worker.run(once=True) == 1
    (job,) = _jobs(engine)
    assert (job.status, job.attempts, job.later) == ("failed", 2, False), "failed for good: nothing is due later"
    assert main(["jobs", "--format", "csv"]) == 0
    listed = ascii.read(capsys.readouterr().out, format="csv")
    assert list(listed["status"]) == ["failed"]
    assert listed["run_after"][0] is np.ma.masked, "a failed job is not due: no run_after shown"
    assert json.loads(listed["args"][0]) == job.args  # JSON, not a Python repr
    with engine.begin() as conn:  # as a job that had reported progress before it failed
        conn.execute(sa.text("UPDATE healcat.job SET progress_done = 5, progress_total = 9 WHERE job_id = :j"),
                     {"j": job_id})
    assert main(["jobs", "--retry", str(job_id)]) == 0
    (job,) = _jobs(engine)
    assert (job.status, job.attempts) == ("queued", 0)
    capsys.readouterr()
    assert main(["jobs", "--format", "csv"]) == 0
    listed = ascii.read(capsys.readouterr().out, format="csv")  # it said "attempt 0:", with the old progress
    assert listed["error"][0].startswith("before it was retried: ") and listed["progress"][0] is np.ma.masked


def _claim_and_die(engine, job_id: int, worker: str) -> None:
    """A worker claims the job and its session ends without a word, as under SIGKILL; the next reaper
    requeues the job (once the server has noticed the dead session and freed its lock)."""
    dying = engine.connect()
    assert queue.claim(dying, worker).job_id == job_id
    with engine.connect() as conn:
        assert queue.requeue_orphans(conn) == [], "the job's worker is alive: leave it alone"
    dying.invalidate()
    dying.close()
    with engine.connect() as conn:
        requeued = wait_until(lambda: queue.requeue_orphans(conn), "the dead session's job is requeued")
    assert requeued == [job_id]


def test_a_dead_workers_job_is_requeued(engine, catalog, tmp_path, scratch_release):
    mapping, csv = scratch_mapping(tmp_path, "orphan"), _small_sdss(tmp_path, 5)
    with engine.begin() as conn:
        job_id, _ = queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": str(csv)})
    _claim_and_die(engine, job_id, "doomed")
    (job,) = _jobs(engine)
    assert job.status == "queued" and "worker doomed stopped holding it" in job.error and job.later, \
        "after a backoff, as for an error"
    with engine.begin() as conn:  # skip the backoff
        conn.execute(sa.text("UPDATE healcat.job SET run_after = now()"))
    assert Worker(engine, name="test").run(once=True) >= 1
    assert _jobs(engine)[0].status == "done"


def test_a_job_that_kills_every_worker_fails_after_its_attempts(engine, catalog, tmp_path, scratch_release):
    with engine.begin() as conn:
        job_id, _ = queue.enqueue(conn, "ingest", {"mapping": "poison"}, max_attempts=2)
    for attempt in (1, 2):
        _claim_and_die(engine, job_id, f"oom-{attempt}")
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE healcat.job SET run_after = now()"))
    (job,) = _jobs(engine)
    assert (job.status, job.attempts, job.later) == ("failed", 2, False)
    assert "worker oom-2 stopped holding it while running it: the worker died or lost its connection" in job.error


def test_retrying_a_failed_job_that_is_queued_again_says_so(engine, catalog, tmp_path, scratch_release, capsys):
    args = {"mapping": str(scratch_mapping(tmp_path, "twice")), "file": "/nonexistent/twice.csv"}
    with engine.begin() as conn:
        first, _ = queue.enqueue(conn, "ingest", args, max_attempts=1)
    assert Worker(engine, name="test").run(once=True) == 1
    with engine.begin() as conn:
        second, created = queue.enqueue(conn, "ingest", args)
    assert created and _jobs(engine)[0].status == "failed"
    assert main(["jobs", "--retry", str(first)]) == 1
    assert f"job {first} is the same job as job {second}, which is queued or running already" in capsys.readouterr().err


def test_inference_counts_skipped_galaxies_and_loads_weights_from_the_catalog(engine, catalog, tmp_path,
                                                                            scratch_release):
    from ingest.inference import run_model

    galaxies = [r for r in sdss_rows() if r["class"] == "GALAXY"][:10]
    galaxies[0]["u"] = ""  # not measured: no prediction, counted as skipped
    path = write_csv(tmp_path / "ten.csv", galaxies)
    from ingest.load import ingest_release

    ingest_release(scratch_mapping(tmp_path, "ten"), engine, file=path)
    weights = Path(catalog["model"].weights_path)
    weights.unlink()  # as on a worker machine that did not train the model
    result = run_model(engine, catalog["model"].name, "scratch/ten")
    assert (result.n_predicted, result.n_skipped) == (9, 1)
    with engine.connect() as conn:
        reasons = conn.execute(sa.text("SELECT reason FROM healcat.inference_skip WHERE run_id = :r"),
                               {"r": result.run_id}).scalars().all()
    assert reasons == ["no sdss_u magnitude"]
    assert weights.is_file(), "the weights came from the catalog, checked against their sha256"


def _restart(conn: sa.Connection) -> list[int]:
    """End every other client session of this database, as a server restart does (``conn``'s goes on)."""
    conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))  # pg_stat_activity now, not as of its transaction's start
    return conn.execute(sa.text(
        "SELECT pid FROM (SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' OFFSET 0) s "
        "WHERE pg_terminate_backend(pid)")).scalars().all()


def test_a_worker_whose_connection_dies_connects_again_and_goes_on(engine, catalog, tmp_path, scratch_release, caplog):
    """A database restart dropped every worker's session: each died on its next claim."""
    worker = Worker(engine, name="test-reconnect")
    thread = threading.Thread(target=worker.run, kwargs={"poll_s": 0.1})
    caplog.set_level(logging.WARNING, logger="ingest.worker")
    thread.start()
    try:
        # its session answered a claim, and the worker holds it between claims: among those ended below
        wait_until(lambda: worker.claimed, "the worker looks for a job")
        with engine.connect() as conn:
            assert _restart(conn)
        mapping, csv = scratch_mapping(tmp_path, "reconnect"), _small_sdss(tmp_path, 5)
        with engine.begin() as conn:
            queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": str(csv)})
        wait_until(lambda: any(j.kind == "ingest" and j.status == "done" for j in _jobs(engine)), "the job is done",
                   poll_s=0.2)
        assert thread.is_alive()
    finally:
        worker.stopping.set()
        thread.join(60)
    assert any(j.kind == "ingest" and j.status == "done" for j in _jobs(engine))
    assert [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records if r.name == "ingest.worker"] == [
        (logging.WARNING, "lost the database connection")], "one warning, no error"
    assert "connecting again in 1 s" in caplog.text


def test_the_servers_idle_session_timeout_is_a_lost_connection(engine):
    """SQLSTATE 57P05 (the server ended a session idle past idle_session_timeout) made a worker exit."""
    from catalog.errors import lost_connection

    with engine.connect() as conn:
        pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))
        conn.execute(sa.text("SET idle_session_timeout = '100ms'"))
        conn.commit()
        wait_until(lambda: not sessions(engine, "pid = :p", p=pid), "the server ends the idle session")
        try:
            conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            error = exc
        else:
            raise AssertionError("the server did not end the idle session")
    assert error.orig.sqlstate == "57P05" and "idle-session timeout" in str(error.orig)
    assert lost_connection(error)


def _lock_waiters(engine) -> int:
    return len(sessions(engine, ADVISORY_WAIT))


def _scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def _gaia_job(engine, tmp_path, version: str) -> int:
    mapping, path = gaia_slice(tmp_path, 200, version)
    with engine.begin() as conn:
        return queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": str(path)})[0]


def _workers(engine, *names: str, **kwargs) -> list[tuple[Worker, threading.Thread]]:
    started = []
    for name in names:
        worker = Worker(engine, name=name, **kwargs)
        thread = threading.Thread(target=worker.run, kwargs={"poll_s": 0.1})
        thread.start()
        started.append((worker, thread))
    return started


def _let_it_finish(engine, holder: sa.Connection, workers) -> None:
    """The other loader of the release is done: the job finishes, and no worker exited meanwhile."""
    holder.rollback()
    wait_until(lambda: _jobs(engine)[0].status == "done", "the job finishes")
    assert all(thread.is_alive() for _, thread in workers), "no worker exited"


def _stop(workers) -> None:
    for worker, _ in workers:
        worker.stopping.set()
    for _, thread in workers:
        thread.join(120)


def test_a_job_stays_its_workers_past_the_servers_idle_session_timeout(engine, catalog, tmp_path, scratch_release):
    """The worker's session sat idle while its job waited (here on the release's lock, in production a
    publish, an ANALYZE, an HNSW build): the server's idle_session_timeout ended it, which freed the
    job's lock, and the other worker requeued the job ('died') and ran it a second time alongside."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER ROLE CURRENT_USER SET idle_session_timeout = '1s'"))
    engine.dispose()  # sessions from now on have the timeout
    holder = engine.connect()
    workers = []
    try:
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('scratch/idle'))"))  # a loader before it
        job_id = _gaia_job(engine, tmp_path, "idle")
        workers = _workers(engine, "idle-a", "idle-b")
        wait_until(lambda: _lock_waiters(engine) == 1, "the job waits for the release's lock")
        time.sleep(3)  # three idle timeouts of the worker's session, while the other worker polls
        job = _jobs(engine)[0]
        assert (job.job_id, job.status, job.attempts, job.error) == (job_id, "running", 1, None)
        _let_it_finish(engine, holder, workers)
    finally:
        holder.close()
        _stop(workers)
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER ROLE CURRENT_USER RESET idle_session_timeout"))
        engine.dispose()
    job = _jobs(engine)[0]
    assert (job.status, job.attempts) == ("done", 1) and not job.result["already_loaded"]


def test_a_worker_that_loses_its_jobs_lock_stops_the_job_and_goes_on(engine, catalog, tmp_path, scratch_release,
                                                                      caplog):
    """A worker whose session (and so the job's lock) was gone went on with the job, while another
    worker requeued and ran it: two runs at once. Now it stops the job, records nothing, and
    connects again; the job runs once more, once."""
    caplog.set_level(logging.INFO, logger="ingest.worker")
    holder = engine.connect()
    workers = []
    try:
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('scratch/lost'))"))
        job_id = _gaia_job(engine, tmp_path, "lost")
        workers = _workers(engine, "lost-a", heartbeat_s=0.2)
        wait_until(lambda: _lock_waiters(engine) == 1, "the job waits for the release's lock")
        with engine.begin() as conn:  # a progress report the requeue must clear
            conn.execute(sa.text("UPDATE healcat.job SET progress_done = 50, progress_total = 200"))
        owner = _scalar(engine, f"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                                f"classid = {queue.LOCK_NAMESPACE} AND objid = :j AND objsubid = 2", j=job_id)
        assert _scalar(engine, "SELECT pg_terminate_backend(:pid)", pid=owner)  # a network cut, a restart

        # The worker stops waiting (its statement cancelled), connects again and requeues its own job.
        wait_until(lambda: _jobs(engine)[0].status == "queued", "the job is requeued")
        assert _lock_waiters(engine) == 0, "nothing of the lost attempt still runs"
        with engine.connect() as conn:
            job = conn.execute(sa.text("SELECT * FROM healcat.job WHERE job_id = :j"), {"j": job_id}).one()
        assert job.attempts == 1 and job.error == "worker lost-a lost its connection to the database while running it"
        assert (job.progress_done, job.progress_total) == (None, None), "a requeued job's progress is cleared"
        workers += _workers(engine, "lost-b", heartbeat_s=0.2)
        with engine.begin() as conn:  # skip the backoff
            conn.execute(sa.text("UPDATE healcat.job SET run_after = now()"))
        wait_until(lambda: _jobs(engine)[0].status == "running", "claimed again")
        wait_until(lambda: _lock_waiters(engine) == 1, "the second attempt waits for the lock")
        _let_it_finish(engine, holder, workers)
    finally:
        holder.close()
        _stop(workers)
    job = _jobs(engine)[0]
    assert (job.status, job.attempts) == ("done", 2) and not job.result["already_loaded"]
    assert _scalar(engine, "SELECT count(*) FROM healcat.release WHERE name = 'scratch/lost'") == 1
    lost = [r for r in caplog.records if "lost the database connection" in r.getMessage()]
    assert [r.levelname for r in lost] == ["WARNING"], "said once, as a warning"
    assert lost[0].getMessage().startswith(f"lost the database connection while running job {job_id} (ingest {job.args}): ")
    assert lost[0].getMessage().endswith("; stopped it, nothing recorded; connecting again in 1 s to requeue it")
    assert f"requeued job {job_id}: this worker lost its connection while running it" in caplog.text


def _infer_job(engine, tmp_path, catalog, version: str) -> int:
    """An infer job of the object classifier over a new release of 50 SDSS rows."""
    from ingest.load import ingest_release

    ingest_release(scratch_mapping(tmp_path, version), engine, file=_small_sdss(tmp_path, 50))
    with engine.begin() as conn:
        return queue.enqueue(conn, "infer", {"model": catalog["classifier"].name, "release": f"scratch/{version}"})[0]


def test_a_restart_during_inference_is_a_warning_not_tracebacks(engine, catalog, tmp_path, scratch_release, caplog):
    """A server restart while a worker ran an infer job logged five tracebacks at ERROR (one record: the
    lane's COPY, its connections' rollbacks, the run's clean-up that could not connect), then the loss
    and each attempt to connect again as errors, though the worker recovered as designed."""
    caplog.set_level(logging.INFO)
    holder = engine.connect()
    workers = []
    try:
        holder.execute(sa.text("LOCK TABLE healcat.prediction IN SHARE MODE"))  # the run's writes wait on it
        job_id = _infer_job(engine, tmp_path, catalog, "restart")
        workers = _workers(engine, "restart-a")
        # The server goes while the lane copies its outputs, and is still away when the run deletes them.
        for statement in ("COPY %prediction%", "DELETE FROM healcat.prediction %"):
            wait_until(lambda: sessions(engine, "wait_event_type = 'Lock' AND query LIKE :q", q=statement),
                       f"{statement} waits")
            assert _restart(holder)
        holder.rollback()
        wait_until(lambda: _jobs(engine)[0].status == "queued", "the job is requeued")
        with engine.begin() as conn:  # skip the backoff
            conn.execute(sa.text("UPDATE healcat.job SET run_after = now()"))
        wait_until(lambda: _jobs(engine)[0].status == "done", "the job runs again")
    finally:
        holder.close()
        _stop(workers)
    job = _jobs(engine)[0]
    assert (job.job_id, job.attempts, job.result["n_predicted"] + job.result["n_skipped"]) == (job_id, 2, 50)
    assert _scalar(engine, "SELECT count(*) FROM healcat.inference_run r JOIN healcat.release USING (release_id) "
                           "WHERE name = 'scratch/restart'") == 1, "the lost run's rows deleted by the next"
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        "no error, no traceback"
    named = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and f"job {job_id} " in r.getMessage()]
    assert named == [f"lost the database connection while running job {job_id} (infer {job.args}): terminating "
                     "connection due to administrator command; stopped it, nothing recorded; connecting again in 1 s "
                     "to requeue it"]
    run = [r.getMessage() for r in caplog.records if r.name == "ingest.inference" and r.levelno == logging.WARNING]
    assert len(run) == 1 and "on scratch/restart stopped, its database connection lost (" in run[0]
    assert run[0].endswith("): the next run deletes what it wrote")


def test_a_bug_in_a_model_still_logs_its_traceback(engine, catalog, tmp_path, scratch_release, caplog, monkeypatch):
    from ingest.tasks import get_task

    def predict(model, inputs, device):
        raise ZeroDivisionError("a bug in the model")

    monkeypatch.setattr(get_task("object_class"), "predict", predict)
    caplog.set_level(logging.INFO)
    job_id = _infer_job(engine, tmp_path, catalog, "bug")
    assert Worker(engine, name="bug").run(once=True) == 1
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in failed] == [f"job {job_id} failed (queued): a bug in the model"]
    assert failed[0].exc_info[0] is ZeroDivisionError and 'raise ZeroDivisionError("a bug in the model")' in caplog.text
    assert "ZeroDivisionError: a bug in the model\nTraceback" in _jobs(engine)[0].error, "the job's error has it too"
    assert _scalar(engine, "SELECT count(*) FROM healcat.inference_run r JOIN healcat.release USING (release_id) "
                           "WHERE name = 'scratch/bug'") == 0, "the failed run was deleted"


def test_a_queued_or_failed_job_can_be_cancelled_a_running_one_says_how(engine, catalog, tmp_path, scratch_release,
                                                                         capsys):
    with engine.begin() as conn:
        queued, _ = queue.enqueue(conn, "infer", {"model": "photoz-sdss", "release": "no/such-release"})
        failed, _ = queue.enqueue(conn, "infer", {"model": "photoz-sdss", "release": "no/other-release"})
        running, _ = queue.enqueue(conn, "infer", {"model": "photoz-sdss", "release": "no/third-release"})
        conn.execute(sa.text("UPDATE healcat.job SET status = 'failed' WHERE job_id = :j"), {"j": failed})
        conn.execute(sa.text("UPDATE healcat.job SET status = 'running', worker = 'busy:1' WHERE job_id = :j"),
                     {"j": running})
    assert main(["jobs", "--cancel", str(queued)]) == 0
    assert main(["jobs", "--cancel", str(failed)]) == 0
    out = capsys.readouterr().out
    assert f"job {queued} (queued) cancelled" in out and f"job {failed} (failed) cancelled" in out
    assert [j.job_id for j in _jobs(engine)] == [running]
    worker = engine.connect()  # the job's worker, alive: its session holds the job's lock
    try:
        worker.execute(queue._LOCK, {"job_id": running})
        assert main(["jobs", "--cancel", str(running)]) == 1
        err = capsys.readouterr().err
        assert f"job {running} is running (worker busy:1): it cannot be cancelled while it runs; stop that worker" in err
    finally:
        worker.invalidate()  # killed (SIGKILL): its session, and the lock, gone (not back to the pool)
        worker.close()
    # an orphan ("(gone)" in healcat jobs) is cancelled: it was refused, sending the operator to stop a
    # worker already dead, and could be cancelled only after a worker had requeued it
    assert main(["jobs", "--cancel", str(running)]) == 0
    assert f"job {running} (running, its worker gone) cancelled" in capsys.readouterr().out
    assert _jobs(engine) == []
    assert main(["jobs", "--cancel", str(queued)]) == 1
    assert f"jobs: no job {queued}" in capsys.readouterr().err


def test_an_index_job_already_running_gets_another_queued_behind_it(conn):
    """Two infer jobs of a release side by side: the first to finish queued the index job, which began
    (and analysed the tables) while the second still wrote; the second's must queue another."""
    first = queue_index(conn, "scratch/side-by-side", None)
    assert queue_index(conn, "scratch/side-by-side", None) == first, "a queued one runs after the writes: it serves"
    conn.execute(sa.text("UPDATE healcat.job SET status = 'running' WHERE job_id = :j"), {"j": first})
    behind = queue_index(conn, "scratch/side-by-side", None)
    assert behind != first
    assert queue_index(conn, "scratch/side-by-side", None) == behind, "one job behind the running one, not one each"
    args = conn.execute(sa.text("SELECT kind, status, args FROM healcat.job WHERE job_id = :j"), {"j": behind}).one()
    assert tuple(args) == ("index", "queued", {"release": "scratch/side-by-side", "after_job": first})
