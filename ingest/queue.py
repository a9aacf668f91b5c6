"""The job queue: a table, FOR UPDATE SKIP LOCKED, and a session advisory lock per running job.

- ``enqueue`` inserts a job unless a live (queued or running) job with the same key exists:
  the partial unique index ``uq_job_live_key`` stops duplicates, not code.
- ``claim`` marks the oldest due job running and takes a session advisory lock on it in the
  same transaction, on the worker's own connection; the lock lives exactly as long as the
  worker's session, so a worker that dies (SIGKILL, lost machine) releases it. The worker keeps
  that session busy while the job runs and stops the job when it ends (ingest/worker.py).
- ``requeue_orphans`` puts back running jobs whose lock nobody holds (their worker died or lost
  its session: a failed attempt).
- ``fail`` retries with exponential backoff until ``max_attempts``, then keeps the job as
  failed with its error (the view ``healcat.failed_job``); ``retry`` requeues a failed job by hand,
  ``cancel`` takes a queued or failed one out of the queue.
- ``progress`` records rows (or steps) done in the running job's row; a job queued by another
  one's success (ingest -> infer -> index) names it in ``parent_job_id``.
- ``progress``, ``finish`` and ``fail`` change the job only while it is the attempt the worker
  claimed (status running, same attempt count): a worker that lost its job never overwrites the
  row of the attempt that replaced it.
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


def _folded(job_id: str) -> str:
    """SQL: the job whose id is the expression ``job_id`` as its lock's second key, the id folded into an
    integer (unique among the jobs running at one time)."""
    return f"CAST({job_id} % 2147483647 AS integer)"


_LOCK = sa.text(f"SELECT pg_advisory_lock({LOCK_NAMESPACE}, {_folded(':job_id')})")
_UNLOCK = sa.text(f"SELECT pg_advisory_unlock({LOCK_NAMESPACE}, {_folded(':job_id')})")


def try_lock(job_id: str) -> str:
    """SQL: take the job's lock for the transaction if no session holds it (true: its worker is gone)."""
    return f"pg_try_advisory_xact_lock({LOCK_NAMESPACE}, {_folded(job_id)})"


def lock_held(job_id: str, session: str = "") -> str:
    """SQL: whether a session holds the lock of the job whose id is the expression ``job_id`` (with
    ``session``, e.g. ``AND pid = pg_backend_pid()``, only such a session)."""
    return (f"EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted {session} "
            f"AND classid = {LOCK_NAMESPACE} AND objid = {_folded(job_id)} AND objsubid = 2)")


# Whether this session holds a job's lock (a ping of the worker's session that also proves it).
_HOLDS = sa.text(f"SELECT {lock_held(':job_id', 'AND pid = pg_backend_pid()')}")

# Running jobs whose advisory lock is free: their worker's session is gone (the worker died, or its
# connection was lost: a server restart, a network cut). Taking the lock here both proves it and
# keeps two reapers from requeueing the same job; it is released at once. It counts as a failed
# attempt: the job waits the same backoff as after an error (its progress cleared), and one that
# has used its attempts (a job that kills every worker that runs it, e.g. out of memory) fails for
# good. The worker that lost its session and requeues its own job says so (:lost, :name).
_REQUEUE_ORPHANS = sa.text(f"""
WITH orphans AS (
    SELECT job_id FROM healcat.job
    WHERE status = 'running' AND {try_lock('job_id')}
    FOR UPDATE SKIP LOCKED)
UPDATE healcat.job AS j
SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
    run_after = CASE WHEN j.attempts >= j.max_attempts THEN j.run_after
                ELSE now() + make_interval(secs => least({BACKOFF_MAX_S}, {BACKOFF_BASE_S} * 2 ^ (j.attempts - 1))) END,
    progress_done = NULL, progress_total = NULL,
    error = CASE WHEN j.job_id = CAST(:lost AS bigint) AND j.worker = :name
                 THEN 'worker ' || j.worker || ' lost its connection to the database while running it'
                 ELSE 'worker ' || coalesce(j.worker, '?') || ' stopped holding it while running it: '
                      'the worker died or lost its connection to the database' END
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


def holds(conn: sa.Connection, job_id: int) -> bool:
    """Whether this connection's session holds the job's lock (a round trip to the server: a ping too)."""
    with conn.begin():
        return bool(conn.scalar(_HOLDS, {"job_id": job_id}))


def _attempt(job: sa.Row):
    """The claimed attempt of a job: still running, not requeued (and maybe claimed again) since."""
    return sa.and_(Job.job_id == job.job_id, Job.status == "running", Job.attempts == job.attempts)


def progress(conn: sa.Connection, job: sa.Row, done: int, total: int | None) -> None:
    """Record how far a running job is (its own short transaction, visible to `healcat jobs` at once)."""
    with conn.begin():
        conn.execute(sa.update(Job).where(_attempt(job)).values(progress_done=done, progress_total=total))


def finish(conn: sa.Connection, job: sa.Row, result: dict[str, Any]) -> None:
    with conn.begin():
        conn.execute(sa.update(Job).where(_attempt(job)).values(
            status="done", finished_at=sa.func.now(), result=result, error=None))
        conn.execute(_UNLOCK, {"job_id": job.job_id})


def fail(conn: sa.Connection, job: sa.Row, error: str, *, retry: bool = True) -> str:
    """Record a failure: back to the queue after a backoff (its progress cleared), or failed for good
    (its ``run_after`` left as it was: nothing is due). Returns the new status."""
    final = not retry or job.attempts >= job.max_attempts
    delay_s = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (job.attempts - 1))
    values = ({"status": "failed", "finished_at": sa.func.now()} if final else
              {"status": "queued", "finished_at": None, "progress_done": None, "progress_total": None,
               "run_after": sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, delay_s)})
    with conn.begin():
        conn.execute(sa.update(Job).where(_attempt(job)).values(error=error, **values))
        conn.execute(_UNLOCK, {"job_id": job.job_id})
    return values["status"]


def requeue_orphans(conn: sa.Connection, *, lost: int | None = None, name: str | None = None) -> list[int]:
    """Requeue running jobs whose worker's session is gone; ``lost``: the job the worker ``name``
    (calling) was running when its own session ended, whose error then says just that."""
    with conn.begin():
        return list(conn.execute(_REQUEUE_ORPHANS, {"lost": lost, "name": name}).scalars())


def cancel(conn: sa.Connection, job_id: int) -> str | None:
    """Take a queued (due or backing off) or failed job out of the queue: its row is deleted (jobs it
    queued keep theirs, with no parent). Returns the status it had; None if there is no such job. A
    running job is not cancelled (a HealcatError says how to stop it), nor a finished one; but one
    whose worker is gone (its lock free: ``healcat jobs`` shows "(gone)") is, as the next worker would
    requeue it."""
    with conn.begin():
        job = conn.execute(sa.select(Job.status, Job.worker).where(Job.job_id == job_id).with_for_update()).first()
        if job is None:
            return None
        orphaned = job.status == "running" and conn.scalar(sa.text(f"SELECT {try_lock(':j')}"), {"j": job_id})
        if job.status == "running" and not orphaned:
            raise HealcatError(
                f"jobs: job {job_id} is running (worker {job.worker}): it cannot be cancelled while it runs; stop "
                f"that worker (SIGTERM lets it finish the job first; SIGKILL abandons it, and the next worker "
                f"requeues it), then healcat jobs --cancel {job_id}")
        if job.status == "done":
            raise HealcatError(f"jobs: job {job_id} is done: nothing to cancel")
        conn.execute(sa.delete(Job).where(Job.job_id == job_id))
        return "running, its worker gone" if orphaned else job.status


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
            .values(status="queued", attempts=0, run_after=sa.func.now(), finished_at=None, progress_done=None,
                    progress_total=None)
        ).rowcount == 1
