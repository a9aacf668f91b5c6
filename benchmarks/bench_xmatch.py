"""Cross-match throughput: 1 million input rows against the 10-million-source sky at 1 arcsec, healcat vs Q3C.

The catalog is benchmarks/sky10m.py's sky (real Gaia DR3 positions tiled 21 times), in healcat and
in a PostgreSQL 15 + Q3C server (benchmarks/q3c.py) in the same run. The input is 1,000,000 of
its rows picked at random (seeded) and moved by a Gaussian jitter of 0.3 arcsec per axis, so most
have a match within 1 arcsec and some have none or several. Both sides find every pair within
1 arcsec ("all"): healcat with ``healcat.xmatch_table`` on the input uploaded to a temporary
table (HEALPix cover computed in Python with healpy), Q3C with ``q3c_join`` on an input table on
its own server; both counts must agree. Also timed: healcat's best-match mode and the whole
Python call (validation, upload, match, astropy Table out). Both servers run throughout; each
path runs once to warm up, then ROUNDS rounds take every path in turn, and each figure is the
median of its rounds (on a shared machine a change of load then falls on every path alike).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import psycopg

N_INPUT = 1_000_000
RADIUS_ARCSEC = 1.0
JITTER_ARCSEC = 0.3
SEED = 7
#: Timed rounds per path (after one warm-up run each), every path in turn within a round.
ROUNDS = 3


def _input(sky) -> tuple[np.ndarray, np.ndarray]:
    """N_INPUT jittered copies of random sky rows (ICRS deg)."""
    from catalog import healpix

    rng = np.random.default_rng(SEED)
    pick = rng.choice(len(sky), N_INPUT, replace=False)
    ra0, dec0 = np.radians(sky.ra[pick]), np.radians(sky.dec[pick])
    v = np.column_stack([np.cos(dec0) * np.cos(ra0), np.cos(dec0) * np.sin(ra0), np.sin(dec0)])
    v += rng.normal(0.0, np.radians(JITTER_ARCSEC / 3600.0), v.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ra = healpix.wrap_ra_deg(np.degrees(np.arctan2(v[:, 1], v[:, 0])))
    return ra, np.degrees(np.arcsin(np.clip(v[:, 2], -1.0, 1.0)))


def _rounds(paths: dict, rounds: int) -> tuple[dict, dict]:
    """Each path run once to warm up, then ``rounds`` timed rounds taking every path in turn, so that a
    change in the shared machine's load falls on all of them alike; (median seconds, last result) per path."""
    results = {name: fn() for name, fn in paths.items()}
    seconds: dict = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            results[name] = fn()
            seconds[name].append(time.perf_counter() - t0)
    return {name: float(np.median(s)) for name, s in seconds.items()}, results


def main() -> None:
    from astropy.table import Table

    from benchmarks import sky10m
    from benchmarks.bench_cone import healcat_settings, prepare
    from benchmarks.q3c import Q3CServer
    from catalog import crossmatch
    from catalog.crossmatch import upload_input
    from catalog.pgcopy import copy_columns

    engine, url, sky, ids = prepare()  # the 10M sky's catalog, served from memory
    ra, dec = _input(sky)
    rows = np.arange(1, N_INPUT + 1, dtype=np.int64)
    table = Table({"ra": ra, "dec": dec})
    settings = healcat_settings(url)  # the same memory and planner settings on both servers

    with Q3CServer(settings) as q3c, psycopg.connect(url) as pg:
        q3c.load(ids, sky.ra, sky.dec, tag=sky10m.Q3C_TAG)
        q3c_pg, q3c_version = q3c.version()
        version = pg.execute("SHOW server_version").fetchone()[0]
        order = pg.execute("SELECT healcat.xmatch_probe_order(%s)", (RADIUS_ARCSEC,)).fetchone()[0]
        t0 = time.perf_counter()
        upload_input(pg, ra, dec, rows, RADIUS_ARCSEC)  # a temporary table, dropped at the end
        t_upload = time.perf_counter() - t0
        with psycopg.connect(q3c.url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bench.xmatch_input")
            conn.execute("CREATE TABLE bench.xmatch_input (row_id bigint PRIMARY KEY, ra float8, dec float8)")
            copy_columns(conn, "bench.xmatch_input", ("row_id", "ra", "dec"), (rows, ra, dec))
            conn.execute("ANALYZE bench.xmatch_input")

            def healcat_count(mode: str):
                return lambda: pg.execute("SELECT count(*), count(source_id) FROM healcat.xmatch_table("
                                          "'healcat_xmatch_input', %s, %s, %s)",
                                          (RADIUS_ARCSEC, sky10m.RELEASE, mode)).fetchone()

            paths = {
                "healcat.xmatch_table, all pairs (SQL)": healcat_count("all"),
                "healcat.xmatch_table, best match (SQL)": healcat_count("best"),
                "catalog.crossmatch, all pairs (Python, whole)": lambda: crossmatch(
                    table, RADIUS_ARCSEC, release=sky10m.RELEASE, mode="all", engine=engine),
                "q3c_join, all pairs (SQL)": lambda: conn.execute(
                    "SELECT count(*) FROM bench.xmatch_input AS i, bench.src AS s "
                    "WHERE q3c_join(i.ra, i.dec, s.ra, s.dec, %s)", (RADIUS_ARCSEC / 3600.0,)).fetchone(),
            }
            seconds, results = _rounds(paths, ROUNDS)
            conn.execute("DROP TABLE bench.xmatch_input")
        pg.rollback()
    (n_all, _), (n_best, n_best_matched) = results["healcat.xmatch_table, all pairs (SQL)"], \
        results["healcat.xmatch_table, best match (SQL)"]
    n_python, (n_q3c,) = len(results["catalog.crossmatch, all pairs (Python, whole)"]), results["q3c_join, all pairs (SQL)"]
    assert n_python == n_all, f"Python and SQL paths disagree: {n_python} vs {n_all}"
    assert abs(n_q3c - n_all) <= max(2, n_all // 10**6), f"healcat and Q3C disagree: {n_all} vs {n_q3c} pairs"

    print(f"\ncross-match: {N_INPUT:,} input rows (sky rows jittered {JITTER_ARCSEC} arcsec) against "
          f"{len(sky):,} sources at {RADIUS_ARCSEC:g} arcsec; healcat on PostgreSQL {version}, Q3C {q3c_version} "
          f"on PostgreSQL {q3c_pg}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"both servers {settings}")
    print(f"pairs: healcat {n_all:,}, Q3C {n_q3c:,}; best mode: {n_best_matched:,} of {n_best:,} rows matched; "
          f"probe order {order}; upload (COPY + cover) {t_upload:.1f} s; median of {ROUNDS} interleaved rounds")
    t_q3c = seconds["q3c_join, all pairs (SQL)"]
    print(f"{'path':<44} {'seconds':>8} {'input rows/s':>13} {'vs q3c_join':>11}")
    for label, s in seconds.items():
        print(f"{label:<44} {s:>8.2f} {N_INPUT / s:>13,.0f} {t_q3c / s:>10.2f}x")


if __name__ == "__main__":
    main()
