"""Worker scaling: the same four release files ingested by one worker process, then by two.

Four slices of the Gaia DR3 bright file (real stars; different rows in each, one survey per file
so the releases are independent) are queued as ingest jobs; `healcat worker --once` processes
drain the queue (each job then queues and runs its index job). Wall time from the first worker's
start to the last one's exit, worker start-up included. Baseline: one worker, in the same run.
Both runs must load the same rows.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_FILES = 4
ROWS_PER_FILE = 40_000


def _setup():
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench"))
    from catalog import db

    url = db.database_url()
    db.migrate(url)
    return db.engine(), db.libpq_url(url)


def _files(folder: Path) -> list[Path]:
    from ingest.mapping import load_mapping

    gaia = load_mapping("gaia_dr3_bright")
    data = gaia.input_path().read_bytes()
    paths = []
    for i in range(N_FILES):
        path = folder / f"gaia-part{i}.bin"
        start = 16 + 36 * ROWS_PER_FILE * i
        path.write_bytes(data[:8] + np.array([ROWS_PER_FILE], "<u8").tobytes()
                         + data[start:start + 36 * ROWS_PER_FILE])
        paths.append(path)
    return paths


def _round(engine, url: str, folder: Path, files: list[Path], n_workers: int) -> tuple[float, int]:
    import sqlalchemy as sa

    from ingest import queue
    from ingest.mapping import load_mapping

    text = load_mapping("gaia_dr3_bright").path.read_text()
    surveys = [f"bench-w{n_workers}-{i}" for i in range(len(files))]
    with engine.begin() as conn:
        for survey, path in zip(surveys, files):
            mapping = folder / f"{survey}.toml"
            mapping.write_text(text.replace('name = "gaia"', f'name = "{survey}"'))
            queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": str(path)})
    env = {**os.environ, "HEALCAT_DATABASE_URL": url}
    t0 = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-m", "catalog.cli", "worker", "--once", "--poll", "0.1"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(n_workers)]
    if any(w.wait() != 0 for w in workers):
        raise SystemExit("a worker failed")
    wall_s = time.perf_counter() - t0
    with engine.begin() as conn:
        failed = conn.scalar(sa.text("SELECT count(*) FROM healcat.job WHERE status <> 'done'"))
        for job in conn.execute(sa.text("SELECT kind, worker, extract(epoch FROM started_at) AS t0, "
                                        "extract(epoch FROM finished_at - started_at) AS s FROM healcat.job "
                                        "ORDER BY started_at")):
            print(f"    {n_workers} worker(s): {job.kind:6} on {job.worker:24} started {float(job.t0) % 1000:7.1f} "
                  f"took {float(job.s):5.1f} s")
        n_rows = conn.scalar(sa.text("SELECT count(*) FROM healcat.source s JOIN healcat.release r USING (release_id) "
                                     "JOIN healcat.survey v USING (survey_id) WHERE v.name = ANY(:s)"), {"s": surveys})
        conn.execute(sa.text("DELETE FROM healcat.source s USING healcat.release r, healcat.survey v "
                             "WHERE s.release_id = r.release_id AND r.survey_id = v.survey_id AND v.name = ANY(:s)"),
                     {"s": surveys})
        conn.execute(sa.text("DELETE FROM healcat.release r USING healcat.survey v "
                             "WHERE r.survey_id = v.survey_id AND v.name = ANY(:s)"), {"s": surveys})
        conn.execute(sa.text("DELETE FROM healcat.survey WHERE name = ANY(:s)"), {"s": surveys})
        conn.execute(sa.text("DELETE FROM healcat.scheduled_ingest"))
        conn.execute(sa.text("DELETE FROM healcat.job"))
    if failed:
        raise SystemExit(f"{failed} jobs did not finish")
    return wall_s, n_rows


def main() -> None:
    engine, url = _setup()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = _files(folder)
        one_s, one_rows = _round(engine, url, folder, files, 1)
        two_s, two_rows = _round(engine, url, folder, files, 2)
    assert one_rows == two_rows == N_FILES * ROWS_PER_FILE, (one_rows, two_rows)
    print(f"\nworkers: {N_FILES} Gaia files x {ROWS_PER_FILE:,} rows ({one_rows:,} sources), ingest + index jobs; "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print(f"  1 worker : {one_s:6.1f} s  ({one_rows / one_s:8,.0f} rows/s)")
    print(f"  2 workers: {two_s:6.1f} s  ({two_rows / two_s:8,.0f} rows/s)")
    print(f"  2 workers / 1 worker wall time: {two_s / one_s:.2f} (speed-up {one_s / two_s:.2f}x)")


if __name__ == "__main__":
    main()
