"""``healcat worker``: run queued jobs until stopped (SIGTERM/SIGINT finish the current job first)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from catalog.errors import MappingError, QueryError
from ingest import queue

log = logging.getLogger(__name__)


def run_ingest(engine: sa.Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Ingest a release; once it is published, queue inference for every current model that applies."""
    from ingest.inference import enqueue_inference, release_id_of
    from ingest.load import ingest_release

    result = ingest_release(args["mapping"], engine, file=args.get("file"))
    with engine.begin() as conn:
        queued = enqueue_inference(conn, release_id_of(conn, result.release))
    return {"release": result.release, "already_loaded": result.already_loaded,
            "row_counts": result.row_counts, "queued_jobs": queued}


def run_infer(engine: sa.Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Run a model over a release: args ``model`` (name) or ``task`` (its model), ``release``, ``version``."""
    from ingest.inference import run_model
    from ingest.tasks import get_task

    model = args.get("model") or get_task(args.get("task", "")).model_name
    result = run_model(engine, model, args["release"], version=args.get("version"))
    return {"run_id": result.run_id, "n_predicted": result.n_predicted, "n_skipped": result.n_skipped,
            "device": result.device}


HANDLERS: dict[str, Callable[[sa.Engine, dict[str, Any]], dict[str, Any]]] = {
    "ingest": run_ingest,
    "infer": run_infer,
}


class Worker:
    def __init__(self, engine: sa.Engine, name: str | None = None):
        self.engine = engine
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()

    def run(self, *, once: bool = False, poll_s: float = 2.0) -> int:
        """Run jobs; with ``once``, until the queue has nothing due. Returns the number of jobs run."""
        done = 0
        # One session for the whole life of the worker: it holds the advisory locks of its jobs.
        with self.engine.connect() as conn:
            while not self.stopping.is_set():
                for job_id in queue.requeue_orphans(conn):
                    log.warning("requeued job %d: its worker died", job_id)
                job = queue.claim(conn, self.name)
                if job is None:
                    if once:
                        break
                    self.stopping.wait(poll_s)
                    continue
                self._run_one(conn, job)
                done += 1
        return done

    def _run_one(self, conn: sa.Connection, job: sa.Row) -> None:
        log.info("job %d (%s %s), attempt %d of %d", job.job_id, job.kind, job.args, job.attempts, job.max_attempts)
        try:
            result = HANDLERS[job.kind](self.engine, job.args)
        except Exception as exc:  # a job's failure is recorded, never fatal to the worker
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
            # A bad mapping or an unknown release or model fails the same way every time: no retries.
            status = queue.fail(conn, job, error, retry=not isinstance(exc, (MappingError, QueryError)))
            log.error("job %d failed (%s): %s", job.job_id, status, exc)
        else:
            queue.finish(conn, job.job_id, result)
            log.info("job %d done: %s", job.job_id, result)

    def stop_on_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
