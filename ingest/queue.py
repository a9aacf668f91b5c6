"""The job queue: a table, FOR UPDATE SKIP LOCKED, and a session advisory lock per running job.

- ``enqueue`` inserts a job unless a live (queued or running) job with the same key exists:
  the partial unique index ``uq_job_live_key`` stops duplicates, not code.
- ``claim`` marks the oldest due job running and takes a session advisory lock on it in the
  same transaction, on the worker's own connection; the lock lives exactly as long as the
  worker's session, so a worker that dies (SIGKILL, lost machine) releases it.
- ``requeue_orphans`` puts back running jobs whose lock nobody holds (a death is a failed attempt).
- ``fail`` retries with exponential backoff until ``max_attempts``, then keeps the job as
  failed with its error (the view ``healcat.failed_job``); ``retry`` requeues a failed job by hand.
- ``progress`` records rows (or steps) done in the running job's row; a job queued by another
  one's success (ingest -> infer -> index) names it in ``parent_job_id``.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from catalog.errors import HealcatError
from catalog.models import Job

#: First key of the two-key advisory locks that mark running jobs ('hcjb').
LOCK_NAMESPACE = 0x68636A62
BACKOFF_BASE_S = 10.0
BACKOFF_MAX_S = 3600.0

_CLAIM = sa.text("""
UPDATE healcat.job SET status = 'running', attempts = attempts + 1, started_at = now(),
       finished_at = NULL, worker = :worker, progress_done = NULL, progress_total = NULL
WHERE job_id = (
    SELECT job_id FROM healcat.job
    WHERE status = 'queued' AND run_after <= now()
    ORDER BY run_after, job_id
    FOR UPDATE SKIP LOCKED
    LIMIT 1)
RETURNING job_id, kind, args, attempts, max_attempts
""")

# The second key is the job_id folded into an integer: unique among the jobs running at one time.
_LOCK = sa.text(f"SELECT pg_advisory_lock({LOCK_NAMESPACE}, CAST(:job_id % 2147483647 AS integer))")
_UNLOCK = sa.text(f"SELECT pg_advisory_unlock({LOCK_NAMESPACE}, CAST(:job_id % 2147483647 AS integer))")

# Running jobs whose advisory lock is free: their worker is gone. Taking the lock here both
# proves it and keeps two reapers from requeueing the same job; it is released at once. A death
# counts as a failed attempt: the job waits the same backoff as after an error, and one that has
# used its attempts (a job that kills every worker that runs it, e.g. out of memory) fails for good.
_REQUEUE_ORPHANS = sa.text(f"""
WITH orphans AS (
    SELECT job_id FROM healcat.job
    WHERE status = 'running' AND pg_try_advisory_xact_lock({LOCK_NAMESPACE}, CAST(job_id % 2147483647 AS integer))
    FOR UPDATE SKIP LOCKED)
UPDATE healcat.job AS j
SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
    run_after = now() + make_interval(secs => least({BACKOFF_MAX_S}, {BACKOFF_BASE_S} * 2 ^ (j.attempts - 1))),
    error = 'worker ' || coalesce(j.worker, '?') || ' died while running it'
FROM orphans WHERE j.job_id = orphans.job_id
RETURNING j.job_id
""")


def job_key(kind: str, args: dict[str, Any]) -> str:
    return f"{kind}:{json.dumps(args, sort_keys=True)}"


def enqueue(conn: sa.Connection, kind: str, args: dict[str, Any], *, max_attempts: int = 5,
            parent_job_id: int | None = None) -> tuple[int, bool]:
    """Queue a job; returns (job_id, created). An identical live job is returned instead of a new one."""
    key = job_key(kind, args)
    stmt = (
        sa.dialects.postgresql.insert(Job)
        .values(kind=kind, key=key, args=args, max_attempts=max_attempts, parent_job_id=parent_job_id)
        .on_conflict_do_nothing(index_elements=["key"], index_where=Job.status.in_(["queued", "running"]))
        .returning(Job.job_id)
    )
    job_id = conn.scalar(stmt)
    if job_id is not None:
        return job_id, True
    live = conn.scalar(sa.select(Job.job_id).where(Job.key == key, Job.status.in_(["queued", "running"])))
    if live is None:  # it finished between the two statements: queue it again
        return enqueue(conn, kind, args, max_attempts=max_attempts, parent_job_id=parent_job_id)
    return live, False


def claim(conn: sa.Connection, worker: str) -> sa.Row | None:
    """Claim the next due job and lock it for this session (commits); None if nothing is due."""
    with conn.begin():
        job = conn.execute(_CLAIM, {"worker": worker}).first()
        if job is not None:
            conn.execute(_LOCK, {"job_id": job.job_id})
    return job


def progress(conn: sa.Connection, job_id: int, done: int, total: int | None) -> None:
    """Record how far a running job is (its own short transaction, visible to `healcat jobs` at once)."""
    with conn.begin():
        conn.execute(sa.update(Job).where(Job.job_id == job_id, Job.status == "running")
                     .values(progress_done=done, progress_total=total))


def finish(conn: sa.Connection, job_id: int, result: dict[str, Any]) -> None:
    with conn.begin():
        conn.execute(sa.update(Job).where(Job.job_id == job_id).values(
            status="done", finished_at=sa.func.now(), result=result, error=None))
        conn.execute(_UNLOCK, {"job_id": job_id})


def fail(conn: sa.Connection, job: sa.Row, error: str, *, retry: bool = True) -> str:
    """Record a failure: back to the queue after a backoff, or failed for good. Returns the new status."""
    final = not retry or job.attempts >= job.max_attempts
    delay_s = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (job.attempts - 1))
    status = "failed" if final else "queued"
    with conn.begin():
        conn.execute(sa.update(Job).where(Job.job_id == job.job_id).values(
            status=status, error=error, finished_at=sa.func.now() if final else None,
            run_after=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, delay_s)))
        conn.execute(_UNLOCK, {"job_id": job.job_id})
    return status


def requeue_orphans(conn: sa.Connection) -> list[int]:
    with conn.begin():
        return list(conn.execute(_REQUEUE_ORPHANS).scalars())


def retry(conn: sa.Connection, job_id: int) -> bool:
    """Requeue a failed job now, with a fresh set of attempts; a HealcatError if an identical job is
    live already (queued or running: the queue holds one of each)."""
    with conn.begin():
        job = conn.execute(sa.select(Job.key).where(Job.job_id == job_id, Job.status == "failed")).first()
        if job is None:
            return False
        live = conn.scalar(sa.select(Job.job_id).where(Job.key == job.key, Job.status.in_(["queued", "running"])))
        if live is not None:
            raise HealcatError(f"jobs: job {job_id} is the same job as job {live}, which is queued or running already")
        return conn.execute(
            sa.update(Job).where(Job.job_id == job_id, Job.status == "failed")
            .values(status="queued", attempts=0, run_after=sa.func.now(), finished_at=None)
        ).rowcount == 1
