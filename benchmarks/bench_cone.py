"""Cone search latency on the 482,176 Gaia DR3 bright stars (real all-sky positions) plus the SDSS sample.

healcat's SQL path (healcat.cone_search) and Python path (catalog.cone_search, astropy Table out)
against the baseline measured in the same run: the same exact distance test as a sequential scan
(what PostgreSQL does without the HEALPix index). Row counts must agree for every centre.
Warm cache: each query runs once before it is timed.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import psycopg

RADII_ARCSEC = {"1 arcsec": 1.0, "1 arcmin": 60.0, "30 arcmin": 1800.0, "2 deg": 7200.0}
N_CENTRES = 200
N_BASELINE = 20
SEQSCAN = ("SELECT count(*) FROM healcat.source "
           "WHERE hpx IS NOT NULL AND healcat.angdist_deg(%s, %s, ra, dec) <= %s / 3600.0")


def _setup():
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench"))
    from catalog import db
    from ingest.load import ingest_release

    url = db.database_url()
    db.migrate(url)
    engine = db.engine()
    for mapping in ("gaia_dr3_bright", "sdss_dr14_skyserver_10k"):
        ingest_release(mapping, engine)
    with psycopg.connect(db.libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE healcat.source")
    return engine, db.libpq_url(url)


def _timed(fn, *args) -> tuple[float, int]:
    fn(*args)  # warm
    t0 = time.perf_counter()
    n = fn(*args)
    return (time.perf_counter() - t0) * 1000, n


def main() -> None:
    from catalog.search import cone_search

    engine, url = _setup()
    rng = np.random.default_rng(42)
    ra = rng.uniform(0, 360, N_CENTRES)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, N_CENTRES)))
    with psycopg.connect(url) as conn:
        n_rows = conn.execute("SELECT count(*) FROM healcat.source").fetchone()[0]
        version = conn.execute("SHOW server_version").fetchone()[0]

        def sql(r, d, rad):
            return conn.execute("SELECT count(*) FROM healcat.cone_search(%s, %s, %s)", (r, d, rad)).fetchone()[0]

        def seqscan(r, d, rad):
            conn.execute("SET enable_indexscan = off; SET enable_bitmapscan = off")
            n = conn.execute(SEQSCAN, (r, d, rad)).fetchone()[0]
            conn.execute("RESET enable_indexscan; RESET enable_bitmapscan")
            return n

        def python(r, d, rad):
            return len(cone_search(r, d, rad, engine=engine))

        print(f"\ncone search: {n_rows:,} sources, {N_CENTRES} random centres per radius "
              f"(baseline on the first {N_BASELINE}); PostgreSQL {version}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores")
        print(f"{'radius':>10} {'rows p50':>8} | {'SQL p50':>8} {'p95':>7} | {'Python p50':>10} {'p95':>7} | "
              f"{'seq scan p50':>12} | {'SQL/seq':>7}")
        for label, rad in RADII_ARCSEC.items():
            t_sql, t_py, t_seq, counts = [], [], [], []
            for i in range(N_CENTRES):
                ms, n = _timed(sql, ra[i], dec[i], rad)
                t_sql.append(ms)
                counts.append(n)
                ms, n_py = _timed(python, ra[i], dec[i], rad)
                t_py.append(ms)
                assert n_py == n, f"Python and SQL paths disagree at ({ra[i]}, {dec[i]}, {rad}): {n_py} vs {n}"
                if i < N_BASELINE:
                    ms, n_seq = _timed(seqscan, ra[i], dec[i], rad)
                    t_seq.append(ms)
                    assert n_seq == n, f"seq scan and index disagree at ({ra[i]}, {dec[i]}, {rad}): {n_seq} vs {n}"
            p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
            print(f"{label:>10} {p(counts, 50):>8.0f} | {p(t_sql, 50):>6.2f}ms {p(t_sql, 95):>5.2f}ms | "
                  f"{p(t_py, 50):>8.2f}ms {p(t_py, 95):>5.2f}ms | {p(t_seq, 50):>10.1f}ms | "
                  f"{p(t_sql, 50) / p(t_seq, 50):>7.4f}")


REGION_CENTRES = 50


def regions() -> None:
    """Box, ellipse and polygon of about 1 deg: Python path and SQL function against the same exact test
    over the whole sky (the region's *_in_ranges function given one range, [0, npix): no index pruning)."""
    from catalog import healpix
    from catalog.search import Box, Ellipse, Polygon, box_search, ellipse_search, polygon_search

    _engine, url = _setup()
    rng = np.random.default_rng(7)
    ra = rng.uniform(0, 360, REGION_CENTRES)
    dec = np.degrees(np.arcsin(rng.uniform(-0.95, 0.95, REGION_CENTRES)))
    cases = {
        "box 1x1 deg": lambda r, d: (Box(r - 0.5, r + 0.5, d - 0.5, d + 0.5), box_search,
                                     "box_search(%s, %s, %s, %s)"),
        "ellipse 1x0.5 deg": lambda r, d: (Ellipse(r, d, 3600.0, 1800.0, 30.0), ellipse_search,
                                           "ellipse_search(%s, %s, %s, %s, %s)"),
        "polygon 5 vertices": lambda r, d: (Polygon.from_vertices(
            [(r, d - 0.5), (r + 0.5, d - 0.2), (r + 0.3, d + 0.5), (r - 0.3, d + 0.5), (r - 0.5, d - 0.2)]),
            polygon_search, "polygon_search(%s)"),
    }
    print(f"\nregion search: {REGION_CENTRES} random centres per region")
    print(f"{'region':>20} {'rows p50':>8} | {'SQL p50':>8} | {'Python p50':>10} {'p95':>7} | "
          f"{'whole-sky scan p50':>18} | {'Python/scan':>11}")
    with psycopg.connect(url) as conn:
        for label, make in cases.items():
            t_sql, t_py, t_scan, counts = [], [], [], []
            for i in range(REGION_CENTRES):
                region, python, call = make(ra[i], dec[i])
                args = region.args()
                ms, n = _timed(lambda: conn.execute(f"SELECT count(*) FROM healcat.{call}", args).fetchone()[0])
                t_sql.append(ms)
                counts.append(n)
                ms, n_py = _timed(lambda: len(python(*_public_args(region))))
                t_py.append(ms)
                assert n_py == n, f"{label} at ({ra[i]}, {dec[i]}): Python {n_py} rows, SQL {n}"
                if i < N_BASELINE // 2:
                    scan = (f"SELECT count(*) FROM healcat.{region.function}(ARRAY[0]::bigint[], "
                            f"ARRAY[{healpix.NPIX}]::bigint[], NULL" + ", %s" * len(args) + ")")
                    ms, n_scan = _timed(lambda: conn.execute(scan, args).fetchone()[0])
                    t_scan.append(ms)
                    assert n_scan == n, f"{label}: whole-sky scan {n_scan} rows, index {n}"
            p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
            print(f"{label:>20} {p(counts, 50):>8.0f} | {p(t_sql, 50):>6.2f}ms | {p(t_py, 50):>8.2f}ms "
                  f"{p(t_py, 95):>5.2f}ms | {p(t_scan, 50):>16.1f}ms | {p(t_py, 50) / p(t_scan, 50):>11.4f}")


def _public_args(region) -> tuple:
    """The public search function's arguments for a region value."""
    return (region.vertices_deg,) if hasattr(region, "vertices_deg") else region.args()


if __name__ == "__main__":
    main()
