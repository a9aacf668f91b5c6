"""Cross-match throughput: 1 million input rows against the 10-million-source sky at 1 arcsec, healcat vs Q3C.

The catalog is benchmarks/sky10m.py's sky (real Gaia DR3 positions tiled 21 times), in healcat and
in a PostgreSQL 15 + Q3C server (benchmarks/q3c.py) in the same run. The input is 1,000,000 of
its rows picked at random (seeded) and moved by a Gaussian jitter of 0.3 arcsec per axis, so most
have a match within 1 arcsec and some have none or several. Both sides find every pair within
1 arcsec ("all"): healcat with ``healcat.xmatch_table`` on the input uploaded to a temporary
table (HEALPix cover computed in Python with healpy), Q3C with ``q3c_join`` on an input table on
its own server; both input tables keyed on row_id (a primary key, built before the timing), which
spares healcat's input check its pass counting the row_ids (migration 0050). Also timed: healcat's best-match mode and the whole Python call (validation,
upload, match, astropy Table out). Both servers run throughout; each path runs once to warm up,
then ROUNDS rounds take every path in turn, and each figure is the median of its rounds (on a
shared machine a change of load then falls on every path alike).

Checked after the timing (:func:`check_pairs`): the Python path's (input row, source_id) pairs are
the SQL function's; Q3C's are the same pairs but for any within 1 micro-arcsec of the radius (where
the two distance formulas may round apart); best mode matches every row that has a pair, each to its
nearest (the smaller source_id on a tie), and no other. ``BENCH_XMATCH_N`` sets the input rows
(default 1,000,000); Q3C is checked for (installed, or root to install it) before the sky is built.
"""

from __future__ import annotations

import os
import platform
import time

import astropy.units as u
import numpy as np
import psycopg
from astropy.coordinates import angular_separation

from catalog.settings import from_env

N_INPUT = from_env("BENCH_XMATCH_N", 1, int, "input rows") or 1_000_000
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


def _key(pairs: np.ndarray) -> np.ndarray:
    """(row_id, source_id) pairs as sorted int64 keys (row_id < 2**31, source_id < 2**32)."""
    return np.sort((pairs[:, 0] << 32) | pairs[:, 1])


def _separation_arcsec(sky, ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, row: np.ndarray,
                       source: np.ndarray) -> np.ndarray:
    """Between input rows (1-based) and sky sources (by source_id; ids: the sky's, in its row order), by
    astropy (Vincenty's formula), independent of the code checked."""
    by_id = np.argsort(ids)
    at = by_id[np.searchsorted(ids, source, sorter=by_id)]
    return angular_separation(ra[row - 1] * u.deg, dec[row - 1] * u.deg, sky.ra[at] * u.deg,
                              sky.dec[at] * u.deg).to_value(u.arcsec)


def check_pairs(sky, ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, sql_all: np.ndarray, sql_sep: np.ndarray,
                sql_best: np.ndarray, python_all: np.ndarray, q3c_all: np.ndarray) -> None:
    """The answers' pairs, each [n, 2] (row_id 1-based into ra/dec, source_id); sql_sep: the SQL pairs'
    separations. Python's pairs must be SQL's; Q3C's too, but for pairs within 1 micro-arcsec of the
    radius; best mode must hold each matched row's nearest (smaller source_id on a tie), and only those."""
    assert len(sql_all), "cross-match: no pairs at all"
    want = _key(sql_all)
    assert np.array_equal(_key(python_all), want), \
        f"cross-match: Python and SQL pairs differ ({len(python_all):,} against {len(sql_all):,} pairs)"
    differ = np.setxor1d(_key(q3c_all), want)
    row, source = differ >> 32, differ & 0xFFFFFFFF
    sep = _separation_arcsec(sky, ids, ra, dec, row, source)
    off = np.abs(sep - RADIUS_ARCSEC) > 1e-6
    assert not off.any(), (f"cross-match: healcat and Q3C disagree on {len(differ):,} of {len(want):,} pairs, "
                           f"{int(off.sum()):,} not at the radius, e.g. (row_id, source_id, arcsec) "
                           f"{list(zip(row[off][:5].tolist(), source[off][:5].tolist(), sep[off][:5].tolist()))}")
    order = np.lexsort((sql_all[:, 1], sql_sep, sql_all[:, 0]))
    nearest = _key(sql_all[order[np.r_[True, np.diff(sql_all[order, 0]) != 0]]])
    best = _key(sql_best)
    assert np.array_equal(best, nearest), (
        f"cross-match, best mode: {len(best):,} rows matched where {len(nearest):,} have a pair; "
        f"{len(np.setdiff1d(best, nearest)):,} not to their nearest")


def main() -> None:
    from astropy.table import Table

    from benchmarks import q3c as q3c_server, sky10m
    from benchmarks.bench_cone import healcat_settings, prepare
    from benchmarks.q3c import Q3CServer
    from catalog import crossmatch
    from catalog.crossmatch import upload_input
    from catalog.pgcopy import copy_columns

    q3c_server.install()  # before the sky is built and loaded (minutes): Q3C needs root to install
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
        pg.execute("ALTER TABLE healcat_xmatch_input ADD PRIMARY KEY (row_id)")  # keyed as Q3C's input is
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

            q3c_pairs = ("SELECT {} FROM bench.xmatch_input AS i, bench.src AS s "
                         "WHERE q3c_join(i.ra, i.dec, s.ra, s.dec, %s)")
            paths = {
                "healcat.xmatch_table, all pairs (SQL)": healcat_count("all"),
                "healcat.xmatch_table, best match (SQL)": healcat_count("best"),
                "catalog.crossmatch, all pairs (Python, whole)": lambda: crossmatch(
                    table, RADIUS_ARCSEC, release=sky10m.RELEASE, mode="all", engine=engine),
                "q3c_join, all pairs (SQL)": lambda: conn.execute(
                    q3c_pairs.format("count(*)"), (RADIUS_ARCSEC / 3600.0,)).fetchone(),
            }
            seconds, results = _rounds(paths, ROUNDS)

            def healcat_pairs(mode: str) -> tuple[np.ndarray, np.ndarray]:
                rows = pg.execute("SELECT row_id, source_id, separation_arcsec FROM healcat.xmatch_table("
                                  "'healcat_xmatch_input', %s, %s, %s) WHERE source_id IS NOT NULL",
                                  (RADIUS_ARCSEC, sky10m.RELEASE, mode)).fetchall()
                return (np.array([r[:2] for r in rows], np.int64).reshape(-1, 2),
                        np.array([r[2] for r in rows], np.float64))

            python = results["catalog.crossmatch, all pairs (Python, whole)"]
            matched = ~np.ma.getmaskarray(python["source_id"])
            check_pairs(sky, ids, ra, dec, *healcat_pairs("all"), healcat_pairs("best")[0],
                        np.column_stack([np.asarray(python["input_row"])[matched],
                                         np.ma.getdata(python["source_id"])[matched]]).astype(np.int64),
                        np.array(conn.execute(q3c_pairs.format("i.row_id, s.source_id"),
                                              (RADIUS_ARCSEC / 3600.0,)).fetchall(), np.int64).reshape(-1, 2))
            conn.execute("DROP TABLE bench.xmatch_input")
        pg.rollback()
    (n_all, _), (n_best, n_best_matched) = results["healcat.xmatch_table, all pairs (SQL)"], \
        results["healcat.xmatch_table, best match (SQL)"]
    (n_q3c,) = results["q3c_join, all pairs (SQL)"]

    print(f"\ncross-match: {N_INPUT:,} input rows (sky rows jittered {JITTER_ARCSEC} arcsec) against "
          f"{len(sky):,} sources at {RADIUS_ARCSEC:g} arcsec; healcat on PostgreSQL {version}, Q3C {q3c_version} "
          f"on PostgreSQL {q3c_pg}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"both servers {settings}")
    print(f"pairs: healcat {n_all:,}, Q3C {n_q3c:,}; best mode: {n_best_matched:,} of {n_best:,} rows matched; "
          f"probe order {order}; upload (COPY + cover + key) {t_upload:.1f} s; median of {ROUNDS} interleaved rounds")
    t_q3c = seconds["q3c_join, all pairs (SQL)"]
    print(f"{'path':<44} {'seconds':>8} {'input rows/s':>13} {'vs q3c_join':>11}")
    for label, s in seconds.items():
        print(f"{label:<44} {s:>8.2f} {N_INPUT / s:>13,.0f} {t_q3c / s:>10.2f}x")


if __name__ == "__main__":
    main()
