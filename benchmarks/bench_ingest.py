"""End-to-end ingestion throughput of a 10-million-row catalogue, and the loader's peak memory.

A seeded synthetic Parquet catalogue (id, ra, dec and 10 AB magnitudes; generated once under
var/bench, or ``BENCH_INGEST_DIR``) is ingested by `healcat ingest` in a child process, from file to
published release with every index and constraint, in a catalog of its own (ingest-home in that
folder, deleted after).
Baseline, measured in the same run: the raw limit of the database, a binary COPY of the very rows
the release ended with (its sources and photometry, dumped with COPY TO) into tables with the same
columns and no index or constraint. Also timed, as the bound of any loader that indexes by sorting
after the COPY instead of row by row (e.g. one new partition per release): the same rows COPYed
into unindexed tables, then given every index and constraint of healcat's tables by CREATE INDEX
and ALTER TABLE, in one transaction. Figures: rows/s of each, their ratios, and the
loader's peak resident memory (the ingest child's own ru_maxrss, from wait4: not the other
children's, such as `healcat db up`).

    python -m benchmarks ingest            # 10,000,000 rows
    BENCH_INGEST_ROWS=1000000 python -m benchmarks ingest
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

from catalog.settings import from_env

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(os.environ.get("BENCH_INGEST_DIR") or ROOT / "var" / "bench")
N_BANDS = 10
ROW_GROUP = 250_000
TABLES = {"source": "shard, source_id, release_id, object_id, ra, dec, hpx, attrs",
          "photometry": "shard, source_id, band, mag, mag_err, mag_system, flux_ujy, flux_err_ujy"}


def generate(path: Path, n_rows: int, seed: int = 20261124) -> None:
    """The synthetic catalogue, written row group by row group (bounded memory); kept between runs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([("id", pa.int64()), ("ra", pa.float64()), ("dec", pa.float64())]
                       + [(f"mag_{b}", pa.float32()) for b in range(N_BANDS)])
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, n_rows, ROW_GROUP):
            n = min(ROW_GROUP, n_rows - start)
            columns = [np.arange(start + 1, start + n + 1, dtype=np.int64), rng.uniform(0, 360, n),
                       np.degrees(np.arcsin(rng.uniform(-1, 1, n)))]
            columns += [rng.normal(22.0, 1.5, n).astype(np.float32) for _ in range(N_BANDS)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    tmp.rename(path)


def mapping_text(path: Path, n_rows: int) -> str:
    names = [f"bench_b{b}" for b in range(N_BANDS)]  # no survey's filters: declared new (ingest.bands)
    bands = ", ".join(f"{name} = \"mag_{b}\"" for b, name in enumerate(names))
    return (f'[survey]\nname = "bench"\n[release]\nversion = "synthetic-{n_rows}"\nfile = "{path}"\n'
            f'format = "parquet"\n[source]\nobject_id = "{{id}}"\nra = {{ column = "ra", unit = "deg" }}\n'
            f'dec = {{ column = "dec", unit = "deg" }}\n[photometry]\nsystem = "AB"\nbands = {{ {bands} }}\n'
            f'new_bands = {json.dumps(names)}\n')


def main() -> None:
    n_rows = from_env("BENCH_INGEST_ROWS", 1, int, "rows") or 10_000_000
    BENCH.mkdir(parents=True, exist_ok=True)
    data = BENCH / f"ingest_{n_rows}.parquet"
    if not data.exists():
        t0 = time.perf_counter()
        generate(data, n_rows)
        print(f"generated {data} ({data.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    home = BENCH / "ingest-home"
    shutil.rmtree(home, ignore_errors=True)
    mapping = BENCH / "bench_ingest.toml"
    mapping.write_text(mapping_text(data, n_rows))
    env = {**os.environ, "HEALCAT_HOME": str(home)}
    env.pop("HEALCAT_DATABASE_URL", None)
    healcat = [sys.executable, "-m", "catalog.cli"]
    try:
        subprocess.run([*healcat, "db", "up"], env=env, check=True, capture_output=True)
        url = subprocess.run([*healcat, "db", "url"], env=env, check=True, capture_output=True, text=True).stdout.strip()
        ingest_s, peak_mib = _run_measured([*healcat, "ingest", str(mapping)], env)
        rows, raw_s, sorted_s = _raw_copy(url, BENCH / "raw")
        _report(n_rows, rows, ingest_s, raw_s, sorted_s, peak_mib, url)
    finally:
        subprocess.run([*healcat, "db", "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(BENCH / "raw", ignore_errors=True)


def _run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a child; (wall seconds, its own peak resident memory in MiB, from wait4)."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    return seconds, usage.ru_maxrss / 1024


def _raw_copy(url: str, folder: Path) -> tuple[dict[str, int], float, float]:
    """Dump the release's final rows (binary COPY TO); time their binary COPY into unindexed tables
    (the raw limit), then into tables indexed after the COPY (the sorted-index bound)."""
    folder.mkdir(exist_ok=True)
    rows, raw_s, sorted_s = {}, 0.0, 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        for table, columns in TABLES.items():
            dump = folder / f"{table}.bin"
            with dump.open("wb") as fh, conn.cursor().copy(
                    f"COPY (SELECT {columns} FROM healcat.{table}) TO STDOUT (FORMAT BINARY)") as copy:
                for block in copy:
                    fh.write(block)
            conn.execute(f"CREATE TABLE raw_{table} (LIKE healcat.{table})")  # columns only: no index, no constraint
            with conn.transaction():
                raw_s += _copy_in(conn, dump, f"raw_{table}", columns)
            rows[table] = conn.execute(f"SELECT count(*) FROM raw_{table}").fetchone()[0]
            sorted_s += _copy_then_index(conn, dump, table, columns)
            dump.unlink()
    return rows, raw_s, sorted_s


def _copy_in(conn: psycopg.Connection, dump: Path, table: str, columns: str) -> float:
    t0 = time.perf_counter()
    with dump.open("rb") as fh, conn.cursor().copy(
            f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        for block in iter(lambda: fh.read(1 << 20), b""):
            copy.write(block)
    return time.perf_counter() - t0


def _copy_then_index(conn: psycopg.Connection, dump: Path, table: str, columns: str) -> float:
    """COPY into a new unindexed table, then every index and check/foreign-key constraint of
    healcat's table, built from the loaded rows (COPY FREEZE was measured slower: 16.7 s against ~9 s
    for 10M photometry rows)."""
    indexes = [d for (d,) in conn.execute("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass",
                                          (f"healcat.{table}",))]
    constraints = conn.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                               "WHERE conrelid = %s::regclass AND contype IN ('c', 'f')", (f"healcat.{table}",)).fetchall()
    t0 = time.perf_counter()
    with conn.transaction():
        conn.execute(f"CREATE TABLE sorted_{table} (LIKE healcat.{table})")
        _copy_in(conn, dump, f"sorted_{table}", columns)
        for definition in indexes:
            conn.execute(definition.replace(" INDEX ", " INDEX sorted_", 1)
                         .replace(f" ON healcat.{table} ", f" ON sorted_{table} "))
        for name, definition in constraints:  # photometry's key refers to the sorted copy of source
            conn.execute(f"ALTER TABLE sorted_{table} ADD CONSTRAINT sorted_{name} "
                         + definition.replace("REFERENCES healcat.source(", "REFERENCES sorted_source("))
    return time.perf_counter() - t0


def _report(n_rows: int, rows: dict[str, int], ingest_s: float, raw_s: float, sorted_s: float, peak_mib: float,
            url: str) -> None:
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    total = sum(rows.values())
    print(f"\ningest: {n_rows:,d} catalogue rows (positions + {N_BANDS} AB magnitudes, Parquet) -> "
          f"{rows['source']:,d} sources + {rows['photometry']:,d} photometry rows")
    print(f"PostgreSQL {version}, Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min)")
    print("| path | seconds | file rows/s | table rows/s |\n|---|---|---|---|")
    print(f"| healcat ingest (file -> published, indexed) | {ingest_s:.1f} | {n_rows / ingest_s:,.0f} | "
          f"{total / ingest_s:,.0f} |")
    print(f"| raw limit: binary COPY of the same rows, unindexed | {raw_s:.1f} | {n_rows / raw_s:,.0f} | "
          f"{total / raw_s:,.0f} |")
    print(f"| sorted-index bound: COPY, then CREATE INDEX and constraints | {sorted_s:.1f} | "
          f"{n_rows / sorted_s:,.0f} | {total / sorted_s:,.0f} |")
    print(f"ingest / raw limit: {raw_s / ingest_s:.2f}x; sorted-index bound / raw limit: {raw_s / sorted_s:.2f}x; "
          f"loader peak RSS {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
