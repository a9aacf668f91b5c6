"""``healcat worker``: run queued jobs until stopped (SIGTERM/SIGINT finish the current job first).

The chain of a release: an ``ingest`` job loads and publishes it, then queues one ``infer`` job
per model that applies (``ingest.inference.applicable_models``); each of those, once done, queues
the release's ``index`` job (ANALYZE, HNSW indexes), which runs once however many queue it while
it waits. Each job names the one that queued it in ``parent_job_id``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from catalog.errors import IngestError, MissingInputError, QueryError, first_line, lost_connection
from ingest import progress, queue

log = logging.getLogger(__name__)


def run_ingest(engine: sa.Engine, args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """Ingest a release; then queue one infer job per model that applies to it, or the index job if none does."""
    from ingest.inference import enqueue_inference
    from ingest.load import ingest_release

    result = ingest_release(args["mapping"], engine, file=args.get("file"), checksum=args.get("checksum"))
    with engine.begin() as conn:
        queued = enqueue_inference(conn, result.release_id, parent_job_id=job_id)
        if not queued:
            queued.append(queue.enqueue(conn, "index", {"release": result.release}, parent_job_id=job_id)[0])
    return {"release": result.release, "already_loaded": result.already_loaded,
            "row_counts": result.row_counts, "queued_jobs": queued}


def run_infer(engine: sa.Engine, args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """Run a model over a release (args ``model`` or ``task``, ``release``, ``version``); then queue its index job."""
    from ingest.inference import run_model
    from ingest.tasks import get_task

    model = args.get("model") or get_task(args.get("task", "")).model_name
    result = run_model(engine, model, args["release"], version=args.get("version"))
    with engine.begin() as conn:
        index_job, _ = queue.enqueue(conn, "index", {"release": args["release"]}, parent_job_id=job_id)
    return {"run_id": result.run_id, "n_predicted": result.n_predicted, "n_skipped": result.n_skipped,
            "device": result.device, "lanes": result.lanes, "seconds": round(result.run_seconds, 1),
            "queued_jobs": [index_job]}


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


class Worker:
    def __init__(self, engine: sa.Engine, name: str | None = None):
        self.engine = engine
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.done = 0  # jobs run
        self.claimed = False  # whether the current connection has claimed (the database answered)

    def run(self, *, once: bool = False, poll_s: float = 2.0) -> int:
        """Run jobs; with ``once``, until the queue has nothing due. Returns the number of jobs run.

        When a database it has worked with goes away (a restart, a dropped connection) the worker
        waits, 1 s and doubling up to :data:`RECONNECT_MAX_S` until a claim succeeds again, and
        connects again; a job it was running lost its session's lock with the connection, so the
        next claim finds it orphaned and queues it again (a failed attempt). A database it never
        reached, a login refused, or any loss under ``once``, is raised."""
        self.done, wait_s, reached = 0, 1.0, False
        while not self.stopping.is_set():
            self.claimed = False
            try:
                # One session at a time for the worker: it holds the advisory locks of its jobs.
                with self.engine.connect() as conn:
                    reached = True
                    if self._serve(conn, once=once, poll_s=poll_s):
                        break
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if once or not reached or not lost_connection(exc) or (getattr(exc.orig, "sqlstate", None) or "")[:2] == "28":
                    raise
                wait_s = 1.0 if self.claimed else wait_s
                log.error("lost the database (%s); connecting again in %.0f s", first_line(exc), wait_s)
                self.stopping.wait(wait_s)
                wait_s = min(RECONNECT_MAX_S, 2 * wait_s)
        return self.done

    def _serve(self, conn: sa.Connection, *, once: bool, poll_s: float) -> bool:
        """Claim and run jobs on one connection until stopped; True once ``once`` finds nothing due."""
        while not self.stopping.is_set():
            for job_id in queue.requeue_orphans(conn):
                log.warning("requeued job %d: its worker died", job_id)
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
        log.info("job %d (%s %s), attempt %d of %d", job.job_id, job.kind, job.args, job.attempts, job.max_attempts)
        try:
            with progress.reporting(lambda done, total: queue.progress(conn, job.job_id, done, total)):
                result = HANDLERS[job.kind](self.engine, job.args, job.job_id)
        except Exception as exc:  # a job's failure is recorded, never fatal to the worker
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
            # Bad input (a malformed mapping or file, rows that all fail) or an unknown release or model
            # fails the same way every time: no retries; a missing file may still arrive.
            permanent = isinstance(exc, (IngestError, QueryError)) and not isinstance(exc, MissingInputError)
            status = queue.fail(conn, job, error, retry=not permanent)
            log.error("job %d failed (%s): %s", job.job_id, status, exc)
        else:
            queue.finish(conn, job.job_id, result)
            log.info("job %d done: %s", job.job_id, result)

    def stop_on_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())


def _pool_member(once: bool, poll_s: float) -> None:
    from catalog import db

    logging.basicConfig(level=logging.INFO, format="%(processName)s %(message)s")
    worker = Worker(db.engine())
    worker.stop_on_signals()
    worker.run(once=once, poll_s=poll_s)


def run_pool(concurrency: int, *, once: bool = False, poll_s: float = 2.0) -> list[int]:
    """``healcat worker --concurrency N``: N worker processes (ingestion is CPU-bound Python, so
    processes, not threads); SIGTERM/SIGINT are passed on and each finishes its job. Returns exit codes."""
    ctx = multiprocessing.get_context("spawn")
    members = [ctx.Process(target=_pool_member, args=(once, poll_s), name=f"worker-{i + 1}")
               for i in range(concurrency)]
    for member in members:
        member.start()

    def pass_on(signum, _frame):
        for member in members:
            if member.pid is not None and member.is_alive():
                os.kill(member.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, pass_on)
    for member in members:
        member.join()
    return [member.exitcode for member in members]
