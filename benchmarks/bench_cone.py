"""Cone search latency on 10 million sources: healcat (PostgreSQL 18) against Q3C (PostgreSQL 15), same rows.

The sky is benchmarks/sky10m.py (real Gaia DR3 positions tiled 21x with jitter), loaded into the
benchmark catalog (HEALCAT_HOME, default var/bench; refused unless it holds the sky alone) and into a
throwaway Q3C server (benchmarks/q3c.py) with the same planner and memory settings. For 200 seeded
random centres per radius (``BENCH_CONE_CENTRES``): healcat's SQL path (healcat.cone_search, rows
fetched), its Python path (catalog.search.cone_search, an astropy Table) and Q3C's q3c_radial_query
returning the same columns nearest first. Warm cache: each query runs once before it is timed. Every
query's source_ids must be Q3C's, on both paths. One plan per radius and path is checked for the
index it must use and printed. Q3C is checked for (installed, or root to install it) first.

``python -m benchmarks regions`` (:func:`regions`) times box, ellipse and polygon searches the same way.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time

import numpy as np
import psycopg

from benchmarks import q3c as q3c_server, sky10m
from benchmarks.q3c import Q3CServer
from catalog.settings import from_env

RADII_ARCSEC = {"1 arcsec": 1.0, "1 arcmin": 60.0, "30 arcmin": 1800.0, "2 deg": 7200.0}
N_CENTRES = from_env("BENCH_CONE_CENTRES", 1, int, "random centres per radius") or 200
SEED = 42
#: The issue's targets: healcat p50 / Q3C p50 at most this, by radius.
TARGET_SMALL, TARGET_LARGE, SMALL_ARCSEC = 0.3, 0.5, 600.0
#: Settings copied from healcat's server to the Q3C one, so both plan and cache alike.
SHARED_SETTINGS = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit",
                   "max_parallel_workers_per_gather")
SQL_QUERY = "SELECT source_id, ra, dec, distance_arcsec FROM healcat.cone_search(%s, %s, %s)"
Q3C_QUERY = ("SELECT source_id, ra, dec, q3c_dist(%(ra)s, %(dec)s, ra, dec) * 3600.0 AS distance_arcsec "
             "FROM bench.src WHERE q3c_radial_query(ra, dec, %(ra)s, %(dec)s, %(r)s / 3600.0) "
             "ORDER BY distance_arcsec, source_id")


def prepare():
    """(engine, healcat libpq URL, sky, source_ids): the benchmark catalog with the 10M sky loaded.
    A catalog holding anything else is refused before it is migrated or its settings changed."""
    sky10m.use_bench_home()
    from catalog import db

    url = db.database_url()
    sky10m.refuse_unless_own(db.libpq_url(url))
    db.migrate(url)
    sky10m.serve_from_memory(db.libpq_url(url))
    engine = db.engine()
    s = sky10m.sky()
    ids = sky10m.load_healcat(engine, s)
    return engine, db.libpq_url(url), s, ids


def healcat_settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in SHARED_SETTINGS}


def _timed(fn, *args):
    """(milliseconds, result) of the second of two calls (the first warms the cache)."""
    fn(*args)  # warm
    t0 = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - t0) * 1000, result


def _same_ids(where: str, **answers) -> int:
    """The answers' source_ids (rows' first column, or a Table's source_id) must be the same set;
    returns how many."""
    ids = {name: np.sort(np.asarray(a["source_id"] if hasattr(a, "colnames") else [r[0] for r in a], np.int64))
           for name, a in answers.items()}
    (first, want), *rest = ids.items()
    for name, got in rest:
        if not np.array_equal(got, want):
            raise AssertionError(f"{where}: {name} returns {len(got)} rows, {first} {len(want)}; only in {name}: "
                                 f"{np.setdiff1d(got, want)[:10].tolist()}, only in {first}: "
                                 f"{np.setdiff1d(want, got)[:10].tolist()}")
    return len(want)


def _plan_nodes(plan: list[str]) -> str:
    """The plan's nodes in one line, repeats counted: 'Sort > Bitmap Index Scan on ix_source_hpx x19'."""
    nodes: list[list] = []
    for line in plan:
        if "(cost=" in line:
            name = line.strip().removeprefix("->").strip().split("  (")[0]
            if nodes and nodes[-1][0] == name:
                nodes[-1][1] += 1
            else:
                nodes.append([name, 1])
    return " > ".join(name if n == 1 else f"{name} x{n}" for name, n in nodes)


def check_plans(conn: psycopg.Connection, q3c: psycopg.Connection, ra: float, dec: float,
                radius_arcsec: float) -> list[str]:
    """EXPLAIN of the three paths' statements for one cone; each must use its spatial index."""
    from catalog.search.cone import Cone

    # Both healcat paths plan their statement inside a SQL function: auto_explain shows it.
    sql_plan = _inner_plan(conn, "SELECT count(*) FROM healcat.cone_search(%s, %s, %s)", (ra, dec, radius_arcsec))
    py_plan = _inner_plan(conn, *Cone.from_arcsec(ra, dec, radius_arcsec).sql())
    q3c_plan = [r[0] for r in q3c.execute("EXPLAIN " + Q3C_QUERY, {"ra": ra, "dec": dec, "r": radius_arcsec})]
    for name, plan, index in (("SQL", sql_plan, "ix_source_hpx"), ("Python", py_plan, "ix_source_hpx"),
                              ("Q3C", q3c_plan, "src_q3c_idx")):
        assert any(index in line for line in plan), \
            f"{name} path at {radius_arcsec} arcsec does not use {index}:\n" + "\n".join(plan)
    return [f"{name}: {_plan_nodes(p)}" for name, p in (("SQL", sql_plan), ("Python", py_plan), ("Q3C", q3c_plan))]


def _inner_plan(conn: psycopg.Connection, statement: str, params: tuple) -> list[str]:
    """The plan of the statement on healcat.source that a query function runs (auto_explain, nested)."""
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; "
                 "SET client_min_messages = log")
    notices: list[str] = []

    def collect(diag):
        notices.append(diag.message_primary)

    conn.add_notice_handler(collect)
    try:
        conn.execute(statement, params).fetchall()
    finally:
        conn.execute("RESET client_min_messages; RESET auto_explain.log_min_duration")
        conn.remove_notice_handler(collect)
    return next(n for n in notices if " on source " in n).split("\n")[1:]


def main() -> None:
    from catalog.search import cone_search

    q3c_server.install()  # before the sky is built and loaded (minutes): Q3C needs root to install
    engine, url, s, ids = prepare()
    rng = np.random.default_rng(SEED)
    ra = rng.uniform(0, 360, N_CENTRES)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, N_CENTRES)))
    settings = healcat_settings(url)
    with Q3CServer(settings) as server:
        server.load(ids, s.ra, s.dec, tag=sky10m.Q3C_TAG)
        q3c_pg, q3c_version = server.version()
        with psycopg.connect(url) as conn, psycopg.connect(server.url) as q3c:
            version = conn.execute("SHOW server_version").fetchone()[0]
            vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]

            # the columns Q3C's query returns (cone_search also gives release and object_id)
            def sql(r, d, radius_arcsec):
                return conn.execute(SQL_QUERY, (r, d, radius_arcsec)).fetchall()

            def python(r, d, radius_arcsec):
                return cone_search(r, d, radius_arcsec, engine=engine)

            def q3c_path(r, d, radius_arcsec):
                return q3c.execute(Q3C_QUERY, {"ra": r, "dec": d, "r": radius_arcsec}).fetchall()

            print(f"\ncone search, {dt.date.today()}: {len(s):,} sources (benchmarks/sky10m.py), {N_CENTRES} random "
                  f"centres per radius, warm cache; healcat on PostgreSQL {version} (pgvector {vector}), Q3C "
                  f"{q3c_version} on PostgreSQL {q3c_pg}; {platform.machine()}, {os.cpu_count()} cores; "
                  f"shared settings {settings}")
            print(f"{'radius':>10} {'rows p50':>8} | {'SQL p50':>8} {'p95':>8} | {'Python p50':>10} {'p95':>8} | "
                  f"{'Q3C p50':>8} {'p95':>8} | {'SQL/Q3C':>7} {'Py/Q3C':>7} {'target':>6}")
            plans = {}
            for label, radius_arcsec in RADII_ARCSEC.items():
                t_sql, t_py, t_q3c, counts = [], [], [], []
                for i in range(N_CENTRES):
                    ms, rows_q3c = _timed(q3c_path, ra[i], dec[i], radius_arcsec)
                    t_q3c.append(ms)
                    ms, rows_sql = _timed(sql, ra[i], dec[i], radius_arcsec)
                    t_sql.append(ms)
                    ms, table = _timed(python, ra[i], dec[i], radius_arcsec)
                    t_py.append(ms)
                    counts.append(_same_ids(f"cone at ({ra[i]}, {dec[i]}, {radius_arcsec} arcsec)", Q3C=rows_q3c,
                                            SQL=rows_sql, Python=table))
                plans[label] = check_plans(conn, q3c, ra[0], dec[0], radius_arcsec)
                p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
                target = TARGET_SMALL if radius_arcsec <= SMALL_ARCSEC else TARGET_LARGE
                r_sql, r_py = p(t_sql, 50) / p(t_q3c, 50), p(t_py, 50) / p(t_q3c, 50)
                verdict = "met" if max(r_sql, r_py) <= target else "MISSED"
                print(f"{label:>10} {p(counts, 50):>8.0f} | {p(t_sql, 50):>6.2f}ms {p(t_sql, 95):>6.2f}ms | "
                      f"{p(t_py, 50):>8.2f}ms {p(t_py, 95):>6.2f}ms | {p(t_q3c, 50):>6.2f}ms {p(t_q3c, 95):>6.2f}ms | "
                      f"{r_sql:>7.2f} {r_py:>7.2f} {'<=' + str(target):>6} {verdict}")
            print("plans (first centre):")
            for label, lines in plans.items():
                for line in lines:
                    print(f"  {label:>10} {line}")


REGION_CENTRES = from_env("BENCH_REGIONS_CENTRES", 1, int, "centres per region type") or 50
#: Whole-sky scans per region type (the baseline; seconds each on 10M rows), on the first centres.
REGION_SCANS = from_env("BENCH_REGIONS_SCANS", 1, int, "whole-sky scans per region type") or 4


def regions() -> None:
    """Box, ellipse and polygon of about 1 deg: the SQL function (rows fetched) and the Python path (an
    astropy Table) against the same exact test over the whole sky, rows fetched too (the region's
    *_in_ranges function given one range, [0, npix): no index pruning), on the first REGION_SCANS
    centres; both ratios are over those centres. The three must return the same source_ids."""
    from catalog import healpix
    from catalog.search import Box, Ellipse, Polygon, box_search, ellipse_search, polygon_search

    _engine, url, _sky, _ids = prepare()
    rng = np.random.default_rng(7)
    ra = rng.uniform(0, 360, REGION_CENTRES)
    dec = np.degrees(np.arcsin(rng.uniform(-0.95, 0.95, REGION_CENTRES)))
    n_scans = min(REGION_SCANS, REGION_CENTRES)
    cases = {
        "box 1x1 deg": lambda r, d: (Box(r - 0.5, r + 0.5, d - 0.5, d + 0.5), box_search,
                                     "box_search(%s, %s, %s, %s)"),
        "ellipse 1x0.5 deg": lambda r, d: (Ellipse(r, d, 3600.0, 1800.0, 30.0), ellipse_search,
                                           "ellipse_search(%s, %s, %s, %s, %s)"),
        "polygon 5 vertices": lambda r, d: (Polygon.from_vertices(
            [(r, d - 0.5), (r + 0.5, d - 0.2), (r + 0.3, d + 0.5), (r - 0.3, d + 0.5), (r - 0.5, d - 0.2)]),
            polygon_search, "polygon_search(%s)"),
    }
    print(f"\nregion search: {REGION_CENTRES} random centres per region, the whole-sky scan on the first {n_scans} "
          f"(SQL and scan fetch the same rows; Python returns them as an astropy Table)")
    print(f"{'region':>20} {'rows p50':>8} | {'SQL p50':>8} | {'Python p50':>10} {'p95':>7} | "
          f"{'whole-sky scan p50':>18} | {'SQL/scan':>9} {'Python/scan':>11}")
    with psycopg.connect(url) as conn:
        for label, make in cases.items():
            t_sql, t_py, t_scan, counts = [], [], [], []
            for i in range(REGION_CENTRES):
                region, python, call = make(ra[i], dec[i])
                args = region.args()
                ms, rows_sql = _timed(lambda: conn.execute(f"SELECT * FROM healcat.{call}", args).fetchall())
                t_sql.append(ms)
                ms, table = _timed(lambda: python(*_public_args(region)))
                t_py.append(ms)
                answers = {"SQL": rows_sql, "Python": table}
                if i < n_scans:
                    scan = (f"SELECT * FROM healcat.{region.function}(ARRAY[0]::bigint[], "
                            f"ARRAY[{healpix.NPIX}]::bigint[], NULL" + ", %s" * len(args) + ")")
                    ms, answers["whole-sky scan"] = _timed(lambda: conn.execute(scan, args).fetchall())
                    t_scan.append(ms)
                counts.append(_same_ids(f"{label} at ({ra[i]}, {dec[i]})", **answers))
            p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
            scan50 = p(t_scan, 50)
            print(f"{label:>20} {p(counts, 50):>8.0f} | {p(t_sql, 50):>6.2f}ms | {p(t_py, 50):>8.2f}ms "
                  f"{p(t_py, 95):>5.2f}ms | {scan50:>16.1f}ms | {p(t_sql[:n_scans], 50) / scan50:>9.4f} "
                  f"{p(t_py[:n_scans], 50) / scan50:>11.4f}")


def _public_args(region) -> tuple:
    """The public search function's arguments for a region value."""
    return (region.vertices_deg,) if hasattr(region, "vertices_deg") else region.args()


if __name__ == "__main__":
    main()
