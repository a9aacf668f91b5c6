"""``healcat worker``: run queued jobs until stopped (SIGTERM/SIGINT finish the current job first).

The chain of a release: an ``ingest`` job loads and publishes it, then queues one ``infer`` job
per model that applies (``ingest.registry.applicable_models``); each of those, once done, queues
the release's ``index`` job (ANALYZE, HNSW indexes), which runs once however many queue it while
it waits. Each job names the one that queued it in ``parent_job_id``.

A running job is the worker's while its session holds the job's advisory lock (ingest/queue.py).
That session would sit idle while the job works on other connections, and a server's
``idle_session_timeout`` or a NAT's or firewall's idle timeout would end it, freeing the lock for
another worker to requeue and run the job alongside. So the worker turns the server's idle
timeout off for its session and, while a job runs, checks every :data:`HEARTBEAT_S` seconds that the
session still holds the lock (a query: it keeps the connection busy too), and again before each
commit of the job's connections. Once it does not (the connection broke, the server restarted),
the job is lost: its running statements are cancelled, no commit of its goes through, nothing is
recorded in its row, and the worker connects again (:class:`JobLost`); the next claim requeues it.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from catalog.errors import (ContentChanged, HealcatError, IngestError, MissingInputError, QueryError, SessionLost,
                            first_line, lost_connection)
from catalog.models import ScheduledIngest
from catalog.watchdog import Watchdog
from ingest import progress, queue

log = logging.getLogger(__name__)


def run_ingest(engine: sa.Engine, args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """Ingest a release (args ``mapping``, optionally ``file``, ``version`` and ``date``, instead of the
    mapping's, and ``checksum``, the scheduler's); then queue one infer job per model that applies to it, or the index
    job if none does (neither for a withdrawn release)."""
    from ingest.registry import enqueue_inference
    from ingest.load import ingest_release
    from ingest.mapping import load_mapping

    try:
        result = ingest_release(load_mapping(args["mapping"], args.get("version"), args.get("date")), engine,
                                file=args.get("file"), checksum=args.get("checksum"))
    except ContentChanged as exc:
        if not args.get("checksum"):  # queued by hand: nothing else will load the new content
            raise
        # The scheduler's next scan queues what the file holds now, nothing failed: even the content
        # it scanned, so its record goes (a file touched while loading, or put back as it was, kept
        # it, and that content was never queued again).
        with engine.begin() as conn:
            conn.execute(sa.delete(ScheduledIngest).where(ScheduledIngest.checksum == args["checksum"],
                                                          ScheduledIngest.job_id == job_id))
        log.warning("job %d: %s", job_id, exc)
        return {"not_loaded": str(exc), "queued_jobs": []}
    if result.status == "withdrawn":  # loaded before, then withdrawn: nothing runs on it until it is restored
        log.warning("job %d: %s is withdrawn: no model runs on it (`healcat release restore %s` brings it back)",
                    job_id, result.release, result.release)
        queued = []
    else:
        with engine.begin() as conn:
            queued = enqueue_inference(conn, result.release_id, parent_job_id=job_id)
            if not queued:
                queued.append(queue_index(conn, result.release, job_id))
    return {"release": result.release, "status": result.status, "already_loaded": result.already_loaded,
            "row_counts": result.row_counts, "queued_jobs": queued}


def run_infer(engine: sa.Engine, args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """Run a model over a release (args ``model`` or ``task``, ``release``, ``version``); then queue its index job."""
    from ingest.inference import ReleaseWithdrawn, RetiredModel, run_model
    from ingest.registry import withdrawal
    from ingest.tasks import get_task

    model = args.get("model") or get_task(args.get("task", "")).model_name
    with engine.connect() as conn:
        withdrawn = withdrawal(conn, args["release"])
    if withdrawn is not None:  # withdrawn since the job was queued: nothing to run, nothing failed
        log.warning("job %d: %s: %s not run", job_id, withdrawn, model)
        return {"not_run": withdrawn, "queued_jobs": []}
    try:
        result = run_model(engine, model, args["release"], version=args.get("version"))
    except (ReleaseWithdrawn, RetiredModel) as exc:  # its version retired, or its release withdrawn, since it was
        log.warning("job %d: %s", job_id, exc)        # queued (retiring drops the queued ones): nothing failed
        return {"not_run": str(exc), "queued_jobs": []}
    with engine.begin() as conn:
        index_job = queue_index(conn, args["release"], job_id)
    return {"run_id": result.run_id, "n_predicted": result.n_predicted, "n_skipped": result.n_skipped,
            "device": result.device, "lanes": result.lanes, "seconds": round(result.run_seconds, 1),
            "queued_jobs": [index_job]}


def queue_index(conn: sa.Connection, release: str, job_id: int) -> int:
    """Queue the release's index job, to run after what the job ``job_id`` wrote (committed before).

    An identical queued job is that job (it runs later); but one already running began before the
    writes and may have analysed the tables without them (two infer jobs of a release side by side:
    the first to finish queued the index job, which ran while the second still wrote), so another
    is queued behind it (its args name the job it follows, so its key differs)."""
    index_job, created = queue.enqueue(conn, "index", {"release": release}, parent_job_id=job_id)
    if not created and conn.scalar(sa.text("SELECT status FROM healcat.job WHERE job_id = :j"),
                                   {"j": index_job}) == "running":
        index_job, _ = queue.enqueue(conn, "index", {"release": release, "after_job": index_job},
                                     parent_job_id=job_id)
    return index_job


def run_index(engine: sa.Engine, args: dict[str, Any], job_id: int) -> dict[str, Any]:
    from ingest.indexing import refresh_indexes

    return refresh_indexes(engine, args["release"])


HANDLERS: dict[str, Callable[[sa.Engine, dict[str, Any], int], dict[str, Any]]] = {
    "ingest": run_ingest,
    "infer": run_infer,
    "index": run_index,
}


#: The longest wait between attempts to reach a database that went away [s].
RECONNECT_MAX_S = 30.0
#: Seconds between checks, while a job runs, that the worker's session still holds the job's lock.
HEARTBEAT_S = 10.0

# The server's idle-session timeout (PostgreSQL 14+) off for this session: it holds job locks.
_NO_IDLE_TIMEOUT = sa.text("SELECT set_config('idle_session_timeout', '0', false) "
                           "WHERE current_setting('idle_session_timeout', true) IS NOT NULL")


class JobLost(SessionLost):
    """The worker's session no longer holds its job's lock: another worker may run the job now.
    ``cause``: the error that ended the session (:attr:`connection_lost`), else why the lock is gone."""

    def __init__(self, job: sa.Row, cause: BaseException | str):
        self.job_id, self.connection_lost = job.job_id, not isinstance(cause, str)
        what = f"job {job.job_id} ({job.kind} {job.args})"
        super().__init__(f"lost the database connection while running {what}: {first_line(cause)}"
                         if self.connection_lost else f"{what}: this worker's session no longer holds it ({cause})")


class Ownership:
    """A claimed job held on the worker's connection ``conn``: a heartbeat thread checks the lock
    (:func:`queue.holds`) every ``heartbeat_s``; :attr:`engine`, the engine the job runs on, checks it
    before each commit and has its connections' statements cancelled once it is lost."""

    def __init__(self, engine: sa.Engine, conn: sa.Connection, job: sa.Row, heartbeat_s: float):
        self.conn, self.job, self.heartbeat_s = conn, job, heartbeat_s
        self.lost: JobLost | None = None
        self._mutex = threading.Lock()  # one statement at a time on conn (heartbeat, progress, commits)
        self._connections: weakref.WeakSet[sa.Connection] = weakref.WeakSet()
        self._stop = threading.Event()
        self.engine = engine.execution_options()  # the same pool, with listeners of its own
        sa.event.listen(self.engine, "engine_connect", lambda conn: self._connections.add(conn))
        sa.event.listen(self.engine, "commit", lambda _conn: self.check())
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat job {job.job_id}", daemon=True)

    def __enter__(self) -> Ownership:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def use(self, action: Callable[[sa.Connection], Any]) -> Any:
        """Run ``action(conn)`` on the worker's connection; JobLost once the lock is gone."""
        with self._mutex:
            if self.lost is not None:
                raise self.lost
            try:
                return action(self.conn)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if lost_connection(exc):
                    self._lose(exc)
                    raise self.lost from exc
                raise

    def check(self) -> None:
        """JobLost unless the worker's session still holds the job's lock (a round trip)."""
        if not self.use(lambda conn: queue.holds(conn, self.job.job_id)):
            with self._mutex:
                self._lose("its lock is not held")
            raise self.lost

    def _lose(self, cause: BaseException | str) -> None:
        if self.lost is not None:
            return
        self.lost = JobLost(self.job, cause)  # logged where the worker handles it
        for conn in list(self._connections):  # stop what the job is doing on its connections now
            try:
                if not conn.closed and not conn.invalidated:
                    conn.connection.driver_connection.cancel()
            except Exception as exc:  # closed meanwhile: nothing to cancel
                log.debug("could not cancel a statement of job %d: %s", self.job.job_id, exc)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.check()
            except JobLost:
                return
            except Exception as exc:  # a statement failing (not the connection): try again next beat
                log.warning("heartbeat of job %d: %s", self.job.job_id, first_line(exc))


class Worker:
    def __init__(self, engine: sa.Engine, name: str | None = None, *, heartbeat_s: float = HEARTBEAT_S):
        self.engine = engine
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.heartbeat_s = heartbeat_s
        self.stopping = threading.Event()
        self.done = 0  # jobs run
        self.failed = 0  # of which failed (retried later or not)
        self.claimed = False  # whether the current connection has claimed (the database answered)
        self.lost_job: int | None = None  # the job this worker was running when its session ended
        # ends what read-only sessions run past their limits, on a thread of its own: a job may run for hours
        self.watchdog = Watchdog(engine)

    def run(self, *, once: bool = False, poll_s: float = 2.0) -> int:
        """Run jobs; with ``once``, until the queue has nothing due. Returns the number of jobs run.

        When a database it has worked with goes away (a restart, a dropped connection, the
        server's idle-session timeout) the worker waits, 1 s and doubling up to
        :data:`RECONNECT_MAX_S` until a claim succeeds again, and connects again; a job it was running
        lost its session's lock with the connection, so it was stopped (:class:`JobLost`) and the
        next claim finds it orphaned and queues it again (a failed attempt). A database it never
        reached, a login refused, or any loss under ``once``, is raised. Meanwhile :attr:`watchdog`
        ends the read-only role's statements and transactions that outlast its limits."""
        with self.watchdog:
            return self._run(once=once, poll_s=poll_s)

    def _run(self, *, once: bool, poll_s: float) -> int:
        # away: the loss was logged (a warning, once), the attempts to connect again since are INFO
        self.done, self.failed, wait_s, reached, away = 0, 0, 1.0, False, False
        while not self.stopping.is_set():
            self.claimed = False
            try:
                # One session at a time for the worker: it holds the advisory locks of its jobs.
                with self.engine.connect() as conn:
                    reached = True
                    conn.execute(_NO_IDLE_TIMEOUT)
                    conn.commit()
                    if away:
                        log.info("connected to the database again")
                    away = False
                    if self._serve(conn, once=once, poll_s=poll_s):
                        break
            except JobLost as exc:
                if once:
                    raise
                # a lock gone from a live session is no restart: something released it
                log.log(logging.WARNING if exc.connection_lost else logging.ERROR,
                        "%s; stopped it, nothing recorded; connecting again in 1 s to requeue it", exc)
                wait_s, away = 1.0, True
                self.stopping.wait(wait_s)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if once or not reached or not lost_connection(exc) or (getattr(exc.orig, "sqlstate", None) or "")[:2] == "28":
                    raise
                wait_s = 1.0 if self.claimed else wait_s
                if away:
                    log.info("still no database (%s); connecting again in %.0f s", first_line(exc), wait_s)
                else:
                    log.warning("lost the database connection (%s); connecting again in %.0f s, then waiting up to "
                                "%.0f s between attempts", first_line(exc), wait_s, RECONNECT_MAX_S)
                away = True
                self.stopping.wait(wait_s)
                wait_s = min(RECONNECT_MAX_S, 2 * wait_s)
        return self.done

    def _serve(self, conn: sa.Connection, *, once: bool, poll_s: float) -> bool:
        """Claim and run jobs on one connection until stopped; True once ``once`` finds nothing due."""
        while not self.stopping.is_set():
            for job_id in queue.requeue_orphans(conn, lost=self.lost_job, name=self.name):
                if job_id == self.lost_job:  # the loss was logged, as a warning
                    log.info("requeued job %d: this worker lost its connection while running it", job_id)
                else:
                    log.warning("requeued job %d: its worker died or lost its connection", job_id)
            self.lost_job = None
            job = queue.claim(conn, self.name)
            self.claimed = True  # the database answered: the next loss starts waiting from 1 s again
            if job is None:
                if once:
                    return True
                self.stopping.wait(poll_s)
                continue
            self._run_one(conn, job)
            self.done += 1
        return False

    def _run_one(self, conn: sa.Connection, job: sa.Row) -> None:
        """Run a claimed job and record its outcome; JobLost (nothing recorded) if the worker's
        session stopped holding it meanwhile."""
        log.info("job %d (%s %s), attempt %d of %d", job.job_id, job.kind, job.args, job.attempts, job.max_attempts)
        with Ownership(self.engine, conn, job, self.heartbeat_s) as owned:
            try:
                with progress.reporting(lambda done, total: owned.use(lambda c: queue.progress(c, job, done, total))):
                    result = HANDLERS[job.kind](owned.engine, job.args, job.job_id)
            except Exception as exc:  # a job's failure is recorded, never fatal to the worker
                if owned.lost is not None:  # what failed was the job stopped: not its failure to record
                    self.lost_job = job.job_id
                    raise owned.lost from exc
                error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
                # Bad input (a malformed mapping or file, rows that all fail) or an unknown release or model
                # fails the same way every time: no retries; a missing file may still arrive.
                permanent = isinstance(exc, (IngestError, QueryError)) and not isinstance(exc, MissingInputError)
                status = self._record(owned, lambda c: queue.fail(c, job, error, retry=not permanent))
                self.failed += 1
                # A connection of the job's lost (not the worker's own, which recorded this) is retried as any failure;
                # healcat's own errors say what was wrong; anything else (a bug) gives its traceback.
                lost = lost_connection(exc)
                log.log(logging.WARNING if lost and status == "queued" else logging.ERROR, "job %d failed (%s): %s",
                        job.job_id, status, first_line(exc) if lost else exc,
                        exc_info=not (lost or isinstance(exc, HealcatError)))
            else:
                self._record(owned, lambda c: queue.finish(c, job, result))
                log.info("job %d done: %s", job.job_id, result)

    def _record(self, owned: Ownership, action: Callable[[sa.Connection], Any]) -> Any:
        try:
            return owned.use(action)
        except JobLost:
            self.lost_job = owned.job.job_id
            raise

    def stop_on_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())


def _pool_member(once: bool, poll_s: float) -> None:
    from catalog import db

    logging.basicConfig(level=logging.INFO, format="%(processName)s %(message)s")
    worker = Worker(db.engine())
    worker.stop_on_signals()
    worker.run(once=once, poll_s=poll_s)
    raise SystemExit(1 if once and worker.failed else 0)  # --once (cron): a failed job makes the exit code say so


def run_pool(concurrency: int, *, once: bool = False, poll_s: float = 2.0) -> list[int]:
    """``healcat worker --concurrency N``: N worker processes (ingestion is CPU-bound Python, so
    processes, not threads); SIGTERM/SIGINT are passed on and each finishes its job. A member killed by a
    signal the pool did not pass on (the kernel's out-of-memory killer, an operator's kill -9) is
    replaced, and said so; its job is requeued by the next claim. Returns every member's exit code."""
    ctx = multiprocessing.get_context("spawn")
    started = 0
    stopping = threading.Event()

    def start() -> multiprocessing.Process:
        nonlocal started
        started += 1
        member = ctx.Process(target=_pool_member, args=(once, poll_s), name=f"worker-{started}")
        member.start()
        return member

    members = [start() for _ in range(concurrency)]

    def pass_on(signum, _frame):
        stopping.set()
        for member in members:
            if member.pid is not None and member.is_alive():
                os.kill(member.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, pass_on)
    codes = []
    while members:
        multiprocessing.connection.wait([member.sentinel for member in members])
        for member in [m for m in members if not m.is_alive()]:
            members.remove(member)
            member.join()
            codes.append(member.exitcode)
            if member.exitcode < 0 and not stopping.is_set():
                log.error("%s was killed (signal %d); starting another in its place", member.name, -member.exitcode)
                members.append(start())
    return codes
