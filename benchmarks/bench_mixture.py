"""The Gaussian-mixture SQL functions (photo-z PDFs) against their previous definitions, on real mixtures.

Current: the ``healcat`` schema's functions as the catalog's migrations leave them (``ml_v8.sql`` of
migration 0054 when this benchmark was written, ``ml_v9.sql`` of 0057 since). Baseline: the definitions
before 0054, created in the scratch schema ``bench_ml_v7`` in the same run, on the same server: every
function of ``ml_v7.sql``, ``ml_v5.sql``'s plain (four-argument) ``mixture_cdf`` and ``mixture_pdf`` (as
0054's downgrade restores them) and ``ml_v4.sql``'s ``mixture_components`` and ``mixture_total`` (0057
replaced both); their calls to one another point at the scratch schema, ``nan_argument_error`` stays
``healcat``'s, and their PL/pgSQL functions get the search_path the migrations pin. All of it runs in
one transaction that drops the schema (and is rolled back on failure): nothing stays in the catalog.

Inputs: every stored photo-z mixture of the catalog's own SDSS DR14 sample (ingested, both models
trained and photo-z run as ``healcat demo`` does, the first time; ``HEALCAT_HOME`` defaults to
``var/bench/mixture``), copied into a temporary table with each mixture's mean. Timed, each into a
temporary table of its answers, current and baseline alternately for ``BENCH_MIXTURE_ROUNDS`` rounds
(default 3), after one untimed pass of each on 50 mixtures: ``mixture_interval(w, m, s, 0.68, 0)``
(photo-z's value_p16/p84); ``mixture_cdf`` at each mixture's mean, plain and truncated at 0 (the
latter through ``mixture_sf``); ``mixture_pdf`` on a grid of 50 z. Printed: the median and range of
each, and baseline / current. Checked (:func:`_check`) after every pair, failing loudly: the same
rows, NULL on both sides or on neither, and the values within ``RTOL`` relative + ``ATOL`` absolute.

    python -m benchmarks mixture
    BENCH_MIXTURE_ROUNDS=5 python -m benchmarks mixture
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path

import sqlalchemy as sa

from catalog.settings import from_env
from migrations.functions import SQL, definition

ROUNDS = from_env("BENCH_MIXTURE_ROUNDS", 1, int, "rounds") or 3
MAPPING = "sdss_dr14_skyserver_10k"
PHOTOZ = "photoz-sdss"
SCRATCH = "bench_ml_v7"
#: The functions whose calls point at the scratch schema: those ml_v7.sql defines (mixture_cdf and
#: mixture_pdf both overloads, the plain ones from ml_v5.sql).
REWRITTEN = ("mixture_components", "mixture_total", "mixture_term", "mixture_sf", "mixture_cdf", "mixture_pdf",
             "mixture_quantile", "mixture_interval")
#: ml_v4.sql's helpers, which 0054 kept and 0057 replaced (mixture_total) or dropped (mixture_components).
FROM_V4 = ("mixture_components", "mixture_total")
#: ml_v5.sql's plain CDF and density, which ml_v8.sql replaced (ml_v7.sql did not define them).
FROM_V5 = ("mixture_pdf(weights real[], means real[], sigmas real[], x float8)",
           "mixture_cdf(weights real[], means real[], sigmas real[], x float8)")
#: Current and baseline agree where |a - b| <= RTOL * max(|a|, |b|) + ATOL (or both are NULL). The sums
#: differ in rounding (the new ones divide each weight by the total first), and the density's far tails
#: in where a term counts as 0 (ml_v5: ln(weight) below -700 or past 37 sigma; ml_v8: its share, 38).
RTOL, ATOL = 1e-9, 1e-12
GRID = [0.02 * k for k in range(50)]  # z = 0, 0.02, ..., 0.98
LEVEL, LOWER = 0.68, 0.0

_MIXTURES = """
CREATE TEMP TABLE bench_mix ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY source_id) AS i, pdf_weights AS w, pdf_means AS m, pdf_sigmas AS s,
       (SELECT sum(u.w * u.m) / sum(u.w) FROM unnest(pdf_weights::float8[], pdf_means::float8[]) AS u(w, m)) AS mean
FROM healcat.current_prediction
WHERE model_name = :model AND pdf_weights IS NOT NULL"""

#: What is timed: name -> (label, the columns of its answers, its query on schema {s}); each answer keyed by
#: (i, k): the mixture and the grid point (0 where there is none).
CASES = {
    "interval": ("mixture_interval(w, m, s, 0.68, 0)", ("lo", "hi"),
                 "SELECT b.i, 0 AS k, r.lo, r.hi FROM bench_mix AS b, "
                 "LATERAL {s}.mixture_interval(b.w, b.m, b.s, :level, :lower) AS r"),
    "cdf": ("mixture_cdf(w, m, s, mean)", ("v",),
            "SELECT b.i, 0 AS k, {s}.mixture_cdf(b.w, b.m, b.s, b.mean) AS v FROM bench_mix AS b"),
    "cdf_truncated": ("mixture_cdf(w, m, s, mean, 0)", ("v",),
                      "SELECT b.i, 0 AS k, {s}.mixture_cdf(b.w, b.m, b.s, b.mean, :lower) AS v FROM bench_mix AS b"),
    "pdf": (f"mixture_pdf(w, m, s, z), {len(GRID)} z", ("v",),
            "SELECT b.i, g.k, {s}.mixture_pdf(b.w, b.m, b.s, g.z) AS v "
            "FROM bench_mix AS b CROSS JOIN unnest(CAST(:grid AS float8[])) WITH ORDINALITY AS g(z, k)"),
}
IMPLS = {"current": "healcat", "baseline": SCRATCH}


def _setup() -> sa.Engine:
    """The catalog's own SDSS sample with photo-z run on it (each step idempotent, as the demo's)."""
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench" / "mixture"))
    from catalog import db
    from ingest.inference import run_model
    from ingest.load import ingest_release
    from ingest.registry import train

    db.migrate(db.database_url())
    engine = db.engine()
    release = ingest_release(MAPPING, engine).release
    train(engine, "object_class", release)
    train(engine, "photoz", release)
    run_model(engine, PHOTOZ, release)
    return engine


def baseline_sql() -> str:
    """The pre-0054 definitions, their calls to one another (and their own names) in the scratch schema."""
    text = "\n\n".join([*(definition("ml_v4.sql", f) for f in FROM_V4), *(definition("ml_v5.sql", f) for f in FROM_V5),
                         (SQL / "ml_v7.sql").read_text()])
    return re.sub(rf"\bhealcat\.({'|'.join(REWRITTEN)})\b", rf"{SCRATCH}.\1", text)


def _create_baseline(conn) -> None:
    cursor = conn.connection.driver_connection.cursor()  # no parameters: the files' % signs stay as they are
    cursor.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE; CREATE SCHEMA {SCRATCH}")
    cursor.execute(baseline_sql())
    # as the migrations pin healcat's PL/pgSQL functions (migrations.functions.PIN_SEARCH_PATH)
    vector_schema = conn.scalar(sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                        "WHERE extname = 'vector'"))
    for (function,) in conn.execute(sa.text(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang "
            "WHERE p.pronamespace = CAST(:s AS regnamespace) AND l.lanname = 'plpgsql'"), {"s": SCRATCH}):
        cursor.execute(f"ALTER FUNCTION {function} SET search_path = pg_catalog, healcat, {vector_schema}")
    cursor.close()


def _time(conn, case: str, impl: str, limit: int | None = None) -> float:
    """Seconds for one pass of ``case`` on ``impl``'s functions, its answers kept in out_<case>_<impl>."""
    table = f"out_{case}_{impl}"
    query = CASES[case][2].format(s=IMPLS[impl])
    if limit:
        query = query.replace("FROM bench_mix AS b", f"FROM (SELECT * FROM bench_mix WHERE i <= {int(limit)}) AS b")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    t0 = time.perf_counter()
    conn.execute(sa.text(f"CREATE TEMP TABLE {table} ON COMMIT DROP AS {query}"),
                 {"level": LEVEL, "lower": LOWER, "grid": GRID})
    return time.perf_counter() - t0


def _check(conn, case: str) -> dict:
    """Current's answers against the baseline's (a row on one side only differs): an AssertionError naming
    the first that differ, else the largest differences (relative where both are non-zero, absolute) and
    the values 0 on one side only."""
    cols = CASES[case][1]
    pairs = [(f"c.{col}", f"b.{col}") for col in cols]
    agree = " AND ".join(["c.i IS NOT NULL AND b.i IS NOT NULL",
                          *(f"(({c} IS NULL AND {b} IS NULL) OR abs({c} - {b}) <= {RTOL} * greatest(abs({c}), abs({b}))"
                            f" + {ATOL})" for c, b in pairs)])
    join = f"FROM out_{case}_current AS c FULL JOIN out_{case}_baseline AS b USING (i, k)"
    bad = conn.execute(sa.text(f"SELECT i, k, {', '.join(c + ', ' + b for c, b in pairs)} {join} "
                               f"WHERE NOT coalesce({agree}, false) ORDER BY i, k")).all()
    assert not bad, (f"mixture, {case}: {len(bad):,} answers differ between current and baseline beyond rtol {RTOL:g}"
                     f" + atol {ATOL:g}; the first (i, k, current, baseline, ...): {bad[:3]}")
    rel = " , ".join(f"max(abs({c} - {b}) / greatest(abs({c}), abs({b}))) FILTER (WHERE {c} <> 0 AND {b} <> 0)"
                     for c, b in pairs)
    absolute = " , ".join(f"max(abs({c} - {b}))" for c, b in pairs)
    one_zero = " + ".join(f"count(*) FILTER (WHERE ({c} = 0) <> ({b} = 0))" for c, b in pairs)
    nulls = " + ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c, _ in pairs)
    row = conn.execute(sa.text(f"SELECT count(*), greatest({rel}), greatest({absolute}), {one_zero}, {nulls} "
                               f"{join}")).one()
    return {"answers": row[0], "max_rel": row[1] or 0.0, "max_abs": row[2] or 0.0, "one_zero": row[3],
            "nulls": row[4]}


def main() -> None:
    engine = _setup()
    with engine.connect() as conn:
        try:
            with conn.begin():
                conn.execute(sa.text(_MIXTURES), {"model": PHOTOZ})
                conn.exec_driver_sql("ANALYZE bench_mix")
                n, k_min, k_max = conn.execute(sa.text(
                    "SELECT count(*), min(cardinality(w)), max(cardinality(w)) FROM bench_mix")).one()
                if not n:
                    raise SystemExit(f"mixture: no stored {PHOTOZ} mixtures in the catalog")
                _create_baseline(conn)
                times: dict[tuple[str, str], list[float]] = {(c, i): [] for c in CASES for i in IMPLS}
                diffs = {}
                for case in CASES:
                    for impl in IMPLS:  # plans cached, first calls out of the figures
                        _time(conn, case, impl, limit=50)
                    for _ in range(ROUNDS):
                        for impl in IMPLS:
                            times[case, impl].append(_time(conn, case, impl))
                        diffs[case] = _check(conn, case)
                conn.exec_driver_sql(f"DROP SCHEMA {SCRATCH} CASCADE")
        except AssertionError as exc:
            raise SystemExit(str(exc)) from None
    k = f"{k_min}" if k_min == k_max else f"{k_min}-{k_max}"
    print(f"\nmixture: {n:,} stored {PHOTOZ} mixtures (K = {k}), current (healcat) against baseline (ml_v7.sql, "
          f"ml_v5.sql's plain cdf/pdf, ml_v4.sql's total), {ROUNDS} rounds alternating, {platform.machine()}, "
          f"{os.cpu_count()} cores")
    for case, (label, _, _) in CASES.items():
        cur, base = times[case, "current"], times[case, "baseline"]
        d = diffs[case]
        print(f"  {label:<34} current {statistics.median(cur):6.3f} s ({min(cur):.3f}-{max(cur):.3f}), "
              f"baseline {statistics.median(base):6.3f} s ({min(base):.3f}-{max(base):.3f}): "
              f"baseline / current {statistics.median(base) / statistics.median(cur):.2f}x")
        print(f"  {'':<34} {d['answers']:,} answers agree (rtol {RTOL:g} + atol {ATOL:g}); largest difference "
              f"{d['max_rel']:.1e} relative, {d['max_abs']:.1e} absolute; 0 on one side only {d['one_zero']}, "
              f"NULL {d['nulls']}")


if __name__ == "__main__":
    main()
