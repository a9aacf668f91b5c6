"""The SQL Gaussian-mixture functions on mixtures as they are stored (float4 weights summing to 1 only
within rounding) and as a user may pass them (relative weights, bad components), checked against
scipy's normal distribution."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sqlalchemy as sa
from scipy.stats import norm

from migrations.functions import definition
from tests.conftest import across_a_migration


def one(conn, sql: str, **params):
    return conn.execute(sa.text(f"SELECT {sql}"), params).one()


def test_weights_are_relative(conn):
    """A mixture's weights divided by their sum: float4 weights summing to 0.9999998, or 2 + 2."""
    m, s = [0.1, 0.4], [0.05, 0.1]

    def cdf(x):
        return 0.5 * norm.cdf(x, m[0], s[0]) + 0.5 * norm.cdf(x, m[1], s[1])

    for w in ("{0.4999999,0.4999999}", "{2,2}"):
        args = dict(w=w, m="{0.1,0.4}", s="{0.05,0.1}")
        ws = "CAST(:w AS real[]), CAST(:m AS real[]), CAST(:s AS real[])"
        assert one(conn, f"healcat.mixture_cdf({ws}, 'Infinity')", **args)[0] == 1.0
        assert one(conn, f"healcat.mixture_cdf({ws}, 0.3)", **args)[0] == pytest.approx(cdf(0.3), rel=1e-6)
        assert one(conn, f"healcat.mixture_pdf({ws}, 0.3)", **args)[0] == pytest.approx(
            0.5 * norm.pdf(0.3, m[0], s[0]) + 0.5 * norm.pdf(0.3, m[1], s[1]), rel=1e-6)
        assert cdf(one(conn, f"healcat.mixture_quantile({ws}, 0.9)", **args)[0]) == pytest.approx(0.9, abs=1e-6)


def test_interval_of_a_mostly_truncated_mixture(conn):
    """75% of the mass below the bound: weights off by 2e-7 moved the upper bound by 2x (0.0082 for
    0.0036); the interval holds 68% of what the mixture keeps above 0."""
    lo, hi = one(conn, "lo, hi FROM healcat.mixture_interval('{0.4999999,0.4999999}', '{-0.0475,-0.0475}', "
                       "'{0.07,0.07}', 0.68, 0)")
    below = norm.cdf(0, -0.0475, 0.07)
    kept = [(norm.cdf(z, -0.0475, 0.07) - below) / (1 - below) for z in (lo, hi)]
    assert kept == pytest.approx([0.16, 0.84], abs=1e-6) and 0 < lo < hi


def test_interval_is_null_with_nothing_above_the_bound_or_no_bound(conn):
    """As mixture_pdf and mixture_cdf answer: NULL, not 'q must be in (0, 1), got 1', nor the whole
    mixture for a NULL bound."""
    assert one(conn, "lo, hi FROM healcat.mixture_interval('{1}', '{-1}', '{0.01}', 0.68, 0)") == (None, None)
    assert one(conn, "lo, hi FROM healcat.mixture_interval('{1}', '{0.2}', '{0.01}', 0.68, NULL)") == (None, None)
    assert one(conn, "healcat.mixture_cdf('{1}', '{0.2}', '{0.01}', 0.3, NULL)") == (None,)
    lo, hi = one(conn, "lo, hi FROM healcat.mixture_interval('{1}', '{0.2}', '{0.01}', 0.68, '-Infinity')")
    assert [lo, hi] == pytest.approx(list(norm.interval(0.68, 0.2, 0.01)), abs=1e-6)


def test_a_mixture_almost_all_below_its_bound_keeps_its_digits(conn):
    """1 - cdf(lower) and cdf(x) - cdf(lower) cancelled where nearly all the mass is below the bound: a
    unit Gaussian at -8 truncated at 0 (6e-16 of it above) gave the 68% interval [0.0023, 0.161] for
    [0.0214, 0.223]; at -9, NULL. Checked against scipy's truncated normal."""
    from scipy.stats import truncnorm

    for mean in (-0.5, -3.0, -7.0, -8.0, -9.0, -20.0):
        kept = truncnorm(-mean, float("inf"), loc=mean)
        args = dict(m=f"{{{mean}}}")
        lo, hi = one(conn, "lo, hi FROM healcat.mixture_interval('{1}', CAST(:m AS real[]), '{1}', 0.68, 0)", **args)
        assert [lo, hi] == pytest.approx(list(kept.ppf([0.16, 0.84])), rel=1e-6), mean
        cdf, pdf, sf = one(conn, "healcat.mixture_cdf('{1}', CAST(:m AS real[]), '{1}', 0.1, 0), "
                                 "healcat.mixture_pdf('{1}', CAST(:m AS real[]), '{1}', 0.1, 0), "
                                 "healcat.mixture_sf('{1}', CAST(:m AS real[]), '{1}', 0)", **args)
        assert (cdf, pdf, sf) == pytest.approx((kept.cdf(0.1), kept.pdf(0.1), norm.sf(0, mean)), rel=1e-6), mean
    # PostgreSQL raises 'value out of range: underflow' where a product of non-zero float8s rounds to 0:
    # unclamped, erfc near 27 is subnormal, and a float4 weight may be 1e-40 (the README's interval query
    # over stored photo-z failed so); such terms count as 0
    assert one(conn, "count(i.lo) FROM generate_series(1, 1000) AS g, healcat.mixture_interval("
                     "ARRAY[0.2, 0.2, 0.2, 0.2, 1e-40]::real[], ARRAY[0.1 + g / 10000.0, 0.12, 0.14, 0.16, 0.18]::real[], "
                     "'{0.02,0.02,0.03,0.03,0.04}', 0.68, 0) AS i")[0] == 1000
    # nothing above the bound that a float8 holds: no interval, as before
    assert one(conn, "lo, hi FROM healcat.mixture_interval('{1}', '{-40}', '{1}', 0.68, 0)") == (None, None)
    # quantiles far in a tail (the bracket stopped at mean - 10 sigma: -10 for all three)
    for q in (1e-20, 1e-30, 1e-100):
        assert one(conn, "healcat.mixture_quantile('{1}', '{0}', '{1}', :q)", q=q)[0] == pytest.approx(norm.ppf(q),
                                                                                                          rel=1e-9)


def test_the_far_tails_hold_as_far_as_a_float8_does(conn):
    """A tail term below 1e-250 counted as 0 (quantiles stopped at 33.8 sigma: -33.82 for every q below
    1e-250; mixture_sf(37) was 0) and the plain CDF clamped erfc's argument at 8 (5.6e-30 for every x
    below -11.3 sigma): now either tail down to 1e-304, as scipy has them."""
    from scipy.stats import truncnorm

    for x in (-11.0, -12.0, -20.0, -37.0):
        cdf, sf = one(conn, "healcat.mixture_cdf('{1}', '{0}', '{1}', :x), healcat.mixture_sf('{1}', '{0}', '{1}', -:x)",
                      x=x)
        assert (cdf, sf) == pytest.approx((norm.cdf(x), norm.sf(-x)), rel=1e-9), x
    for q in (1e-250, 1e-260, 1e-300, 1e-304):
        assert one(conn, "healcat.mixture_quantile('{1}', '{0}', '{1}', :q)", q=q)[0] == pytest.approx(norm.ppf(q),
                                                                                                          rel=1e-9)
    kept = truncnorm(35.0, float("inf"), loc=-35.0)  # was NULL: 'nothing above the bound'
    assert one(conn, "healcat.mixture_cdf('{1}', '{-35}', '{1}', 0.01, 0), healcat.mixture_pdf('{1}', '{-35}', '{1}', "
                     "0.01, 0)") == pytest.approx((kept.cdf(0.01), kept.pdf(0.01)), rel=1e-9)
    assert one(conn, "healcat.mixture_cdf('{1}', '{0}', '{1}', -12, -40)")[0] == pytest.approx(norm.cdf(-12), rel=1e-9)
    far = truncnorm(36.95, float("inf"), loc=-36.95)  # the density stopped at 37 sigma: 0 where the CDF was right
    for x in (0.06, 0.1):
        assert one(conn, "healcat.mixture_pdf('{1}', '{-36.95}', '{1}', :x, 0), healcat.mixture_cdf('{1}', '{-36.95}', "
                         "'{1}', :x, 0)", x=x) == pytest.approx((far.pdf(x), far.cdf(x)), rel=1e-6), x
    assert one(conn, "healcat.mixture_pdf('{1e30,1e30}', '{0,1}', '{1,1}', 37.5)")[0] == pytest.approx(
        0.5 * (norm.pdf(37.5) + norm.pdf(36.5)), rel=1e-9)
    # weights of any size: the terms are shares of their sum, so no product underflows
    assert one(conn, "healcat.mixture_sf('{1e30,1e30}', '{0,1}', '{1,1}', 30)")[0] == pytest.approx(
        0.5 * (norm.sf(30) + norm.sf(29)), rel=1e-9)
    assert one(conn, "healcat.mixture_cdf('{1e-40,1}', '{0,1}', '{1,1}', -30)")[0] == pytest.approx(
        1e-40 * norm.cdf(-30) + norm.cdf(-31), rel=1e-9)


def test_0054s_downgrade_restores_every_function(engine, database_url):
    before, upgraded, after = across_a_migration(engine, database_url, "0054", "0053")
    assert upgraded != before and len(upgraded) == len(before) + 1 and after == before  # + mixture_tail


def test_0057s_downgrade_restores_every_function(engine, database_url):
    before, upgraded, after = across_a_migration(engine, database_url, "0057", "0056")
    assert upgraded != before and len(upgraded) == len(before) - 2 and after == before  # - term, components


#: What 0057 replaced: ml_v8.sql's total (ml_v4.sql's), tails and density, and the helpers they called.
ML_V8 = (("ml_v4.sql", ("mixture_components", "mixture_total")),
         ("ml_v8.sql", ("mixture_term", "mixture_tail", "mixture_pdf(weights real[], means real[], sigmas real[], x float8)")))


def test_0057s_loops_sum_what_ml_v8s_functions_did_to_the_last_bit(conn):
    """The same terms in the same order: equal, not close, over weights from 1e-30 to 1e30 (zeros too),
    1 to 7 components, x from -1e300 to infinity; and where ml_v8 was wrong, what 0057 says instead."""
    names = "|".join(f.split("(")[0] for _, functions in ML_V8 for f in functions)
    v8 = "\n".join(definition(file, f) for file, functions in ML_V8 for f in functions)
    cursor = conn.connection.driver_connection.cursor()  # the files' text as it is (no parameters)
    cursor.execute("CREATE SCHEMA v8ref; " + re.sub(rf"\bhealcat\.({names})\b", r"v8ref.\1", v8))
    rng = np.random.default_rng(57)
    rows = []
    for i in range(400):
        k = int(rng.integers(1, 8))
        w = 10.0 ** rng.uniform(-30, 30, k) * (rng.random(k) > 0.15)
        w[0] = w[0] or 1.0
        rows.append({"i": i, "w": w.astype(np.float32).tolist(), "m": rng.uniform(-3, 3, k).astype(np.float32).tolist(),
                     "s": (10.0 ** rng.uniform(-3, 0.5, k)).astype(np.float32).tolist()})
    conn.execute(sa.text("CREATE TEMP TABLE mix (i int, w real[], m real[], s real[])"))
    conn.execute(sa.text("INSERT INTO mix VALUES (:i, :w, :m, :s)"), rows)
    xs = [-1e300, -50.0, -3.0, -0.7, 0.0, 0.01, 0.3, 1.5, 2.9, 4.0, 60.0, 1e300, float("inf"), float("-inf")]
    differ = conn.execute(sa.text(
        "SELECT count(*), "
        "count(*) FILTER (WHERE healcat.mixture_pdf(w, m, s, x) IS DISTINCT FROM v8ref.mixture_pdf(w, m, s, x)), "
        "count(*) FILTER (WHERE healcat.mixture_tail('f', w, m, s, x, false) "
        "                 IS DISTINCT FROM v8ref.mixture_tail('f', w, m, s, x, false)), "
        "count(*) FILTER (WHERE healcat.mixture_tail('f', w, m, s, x, true) "
        "                 IS DISTINCT FROM v8ref.mixture_tail('f', w, m, s, x, true)), "
        "count(*) FILTER (WHERE healcat.mixture_total('f', w, m, s) IS DISTINCT FROM v8ref.mixture_total('f', w, m, s)) "
        "FROM mix, unnest(CAST(:xs AS float8[])) AS x"), {"xs": xs}).one()
    assert tuple(differ) == (400 * len(xs), 0, 0, 0, 0)
    # A weight of 0 whose quotient overflows, and an x past float8 over a small sigma: 22003 in ml_v8.
    assert one(conn, "healcat.mixture_pdf('{0,1}', '{0,0}', '{1e-30,1}', 1e308)")[0] == 0.0
    assert one(conn, "healcat.mixture_pdf('{1}', '{0}', '{0.01}', 1e307), healcat.mixture_cdf('{1}', '{0}', '{0.01}', "
                     "1e307), healcat.mixture_sf('{1}', '{0}', '{0.01}', 1e307)") == (0.0, 1.0, 0.0)
    for bad in ("'{{1,1},{1,1}}', '{{0,1},{2,3}}', '{{1,1},{1,1}}'", "'[0:1]={1,1}', '{0,1}', '{1,1}'"):
        with pytest.raises(sa.exc.DBAPIError, match="must be one-dimensional arrays indexed from 1"):
            with conn.begin_nested():
                one(conn, f"healcat.mixture_pdf({bad}, 0.3)")


@pytest.mark.parametrize("function", ["mixture_pdf", "mixture_cdf", "mixture_sf", "mixture_quantile"])
@pytest.mark.parametrize(("w", "m", "s", "why"), [
    ("{1}", "{0}", "{0}", "sigmas finite and > 0"),             # was 'division by zero'
    ("{-1,2}", "{0,1}", "{1,1}", "weights must be finite and >= 0"),  # was a CDF of -0.99999
    ("{1}", "{NaN}", "{1}", "means finite"),
    ("{0,0}", "{0,1}", "{1,1}", "the weights are all 0"),
])
def test_bad_components_are_an_error(conn, function, w, m, s, why):
    with pytest.raises(sa.exc.DBAPIError, match=f"{function}: .*{why}") as err:
        conn.execute(sa.text(f"SELECT healcat.{function}(CAST(:w AS real[]), CAST(:m AS real[]), "
                             "CAST(:s AS real[]), 0.5)"), {"w": w, "m": m, "s": s})
    assert err.value.orig.sqlstate == "22023"


def test_stored_photoz_mixtures_reach_one(conn, catalog):
    """Every stored photo-z mixture's CDF at +inf is 1 exactly, above the bound z = 0 too."""
    top = conn.execute(sa.text(
        "SELECT min(healcat.mixture_cdf(pdf_weights, pdf_means, pdf_sigmas, 'Infinity', 0)), "
        "max(healcat.mixture_cdf(pdf_weights, pdf_means, pdf_sigmas, 'Infinity', 0)), count(*) "
        "FROM healcat.current_prediction WHERE model_name = 'photoz-sdss'")).one()
    assert top[2] > 1000 and top[0] == pytest.approx(1.0, abs=1e-12) and top[1] == pytest.approx(1.0, abs=1e-12)


# Argument edges (migration 0040, sql/ml_v5.sql).

def raises(conn, sql: str, message: str, **params) -> None:
    """``SELECT sql`` is a 22023 error matching ``message``; the transaction goes on after it."""
    savepoint = conn.begin_nested()
    with pytest.raises(sa.exc.DBAPIError, match=message) as err:
        conn.execute(sa.text(f"SELECT {sql}"), params).all()
    savepoint.rollback()
    assert err.value.orig.sqlstate == "22023", err.value


def galaxy(conn) -> int:
    return conn.scalar(sa.text("SELECT min(source_id) FROM healcat.current_prediction WHERE model_name = 'photoz-sdss'"))


MIX = "'{0.4,0.6}'::real[], '{0.1,0.3}'::real[], '{0.05,0.1}'::real[]"


def test_a_nan_argument_is_an_error_naming_the_function_and_argument(conn, catalog):
    """NaN gave NaN (photoz_pdf, photoz_cdf, mixture_pdf, mixture_cdf), 0 (a NaN lower bound) or
    NULL, NULL (mixture_interval's), where photoz_interval and mixture_quantile refused it."""
    g = galaxy(conn)
    for fn in ("photoz_pdf", "photoz_cdf"):
        raises(conn, f"healcat.{fn}(:g, 'NaN')", rf"InvalidParameterValue\) {fn}: z must not be NaN", g=g)
        raises(conn, f"healcat.{fn}(:g, 'NaN', 'photoz-sdss', :v)", f"{fn}: z must not be NaN", g=g,
               v=catalog["model"].version)
        assert one(conn, f"healcat.{fn}(:g, NULL)", g=g) == (None,)  # NULL in, NULL out
        assert one(conn, f"healcat.{fn}(NULL, 0.1)") == (None,)
    for fn in ("mixture_pdf", "mixture_cdf"):
        raises(conn, f"healcat.{fn}({MIX}, 'NaN')", f"{fn}: x must not be NaN")
        raises(conn, f"healcat.{fn}({MIX}, 'NaN', 0)", f"{fn}: x must not be NaN")
        raises(conn, f"healcat.{fn}({MIX}, 0.2, 'NaN')", f"{fn}: lower must not be NaN")
        raises(conn, f"healcat.{fn}({MIX}, -1, 'NaN')", f"{fn}: lower must not be NaN")
        assert one(conn, f"healcat.{fn}({MIX}, NULL)") == (None,)
        assert one(conn, f"healcat.{fn}({MIX}, 0.2, NULL)") == (None,)
        # over rows (a column, not a constant: nothing folded at plan time) and still a number
        assert conn.scalar(sa.text(f"SELECT count(healcat.{fn}({MIX}, x, 0)) FROM generate_series(0.0, 1.0, 0.25) AS x")) == 5
    raises(conn, f"lo FROM healcat.mixture_interval({MIX}, 0.68, 'NaN')", "mixture_interval: lower must not be NaN")
    raises(conn, f"lo FROM healcat.mixture_interval({MIX}, 'NaN')", r"mixture_interval: level must be in \(0, 1\), got NaN")
    raises(conn, f"healcat.mixture_quantile({MIX}, 'NaN')", r"mixture_quantile: q must be in \(0, 1\), got NaN")
    raises(conn, "z_lo FROM healcat.photoz_interval(:g, 'NaN')", r"photoz_interval: level must be in \(0, 1\), got NaN", g=g)


@pytest.mark.parametrize(("call", "message"), [
    ("z_lo FROM healcat.photoz_interval(:g, 1)", r"InvalidParameterValue\) photoz_interval: level must be in \(0, 1\), got 1\b"),
    ("z_lo FROM healcat.photoz_interval(:g, NULL)", r"photoz_interval: level must be in \(0, 1\), got NULL"),
    (f"lo FROM healcat.mixture_interval({MIX}, 1)", r"mixture_interval: level must be in \(0, 1\), got 1\b"),
    (f"lo FROM healcat.mixture_interval({MIX}, 0, 0)", r"mixture_interval: level must be in \(0, 1\), got 0\b"),
])
def test_level_errors_name_their_function(conn, catalog, call, message):
    """They began 'credible interval: level must be in (0, 1)', naming neither function."""
    raises(conn, call, message, g=galaxy(conn))


def _second_version(conn, catalog) -> None:
    """Version '2' of photoz-sdss, promoted (current) but not yet run on any release."""
    conn.execute(sa.text(
        "INSERT INTO healcat.model (name, version, task, framework, weights_path, weights_sha256, weights, "
        "training_set, training_params, hyperparams, metrics, embedding_dim, created_at, promoted_at) "
        "SELECT name, '2', task, framework, weights_path, repeat('e', 64), weights, training_set, training_params, "
        "hyperparams, metrics, embedding_dim, now() + interval '1 hour', now() + interval '1 hour' "
        "FROM healcat.model WHERE model_id = :m"), {"m": catalog["model"].model_id})


def test_a_named_version_without_a_prediction_says_why(conn, catalog):
    """Version 2 promoted but not run on the galaxy's release: an error naming the source and the
    version (was: NULL, where similar_sources says 'has no embedding from model photoz-sdss/2'). A
    galaxy that the version's run skipped stays NULL (its reason in inference_skip), as does any
    source with no version named."""
    g = galaxy(conn)
    _second_version(conn, catalog)
    missing = rf"source {g} has no prediction from model photoz-sdss/2: .*release sdss/dr14-skyserver-10k"
    raises(conn, "healcat.photoz_cdf(:g, 0.1, 'photoz-sdss', '2')", f"photoz_cdf: {missing}", g=g)
    raises(conn, "healcat.photoz_pdf(:g, 0.1, 'photoz-sdss', '2')", f"photoz_pdf: {missing}", g=g)
    raises(conn, "z_lo FROM healcat.photoz_interval(:g, 0.68, 'photoz-sdss', '2')", f"photoz_interval: {missing}", g=g)
    assert one(conn, "count(*) FROM healcat.photoz_prediction(:g, 'photoz-sdss', '2')", g=g) == (0,)  # rows: none
    raises(conn, "healcat.photoz_cdf(-1, 0.1, 'photoz-sdss', '2')", "photoz_cdf: no source with source_id -1")
    # no version named: the current run's (version 2 has none yet), unchanged
    assert one(conn, "healcat.photoz_cdf(:g, 0.1)", g=g)[0] > 0
    assert one(conn, "healcat.photoz_cdf(-1, 0.1)") == (None,)
    # skipped by the version named, which has run on the release: NULL, and the reason is recorded
    v1 = catalog["model"].version
    skipped = conn.execute(sa.text(
        "SELECT k.source_id, k.reason FROM healcat.inference_skip k WHERE k.run_id = :r ORDER BY k.source_id LIMIT 1"),
        {"r": catalog["run"].run_id}).one()
    for fn in ("photoz_pdf", "photoz_cdf"):
        assert one(conn, f"healcat.{fn}(:s, 0.1, 'photoz-sdss', :v)", s=skipped.source_id, v=v1) == (None,)
        assert one(conn, f"healcat.{fn}(:s, 0.1)", s=skipped.source_id) == (None,)
    assert conn.execute(sa.text("SELECT * FROM healcat.photoz_interval(:s, 0.68, 'photoz-sdss', :v)"),
                        {"s": skipped.source_id, "v": v1}).all() == []
    assert skipped.reason
    # once version 2 has finished a run on the release, a galaxy it gave nothing is NULL again
    conn.execute(sa.text(
        "INSERT INTO healcat.inference_run (model_id, release_id, device, finished_at) "
        "SELECT m.model_id, s.release_id, 'cpu', now() FROM healcat.model m, healcat.source s "
        "WHERE m.name = 'photoz-sdss' AND m.version = '2' AND s.source_id = :g"), {"g": g})
    assert one(conn, "healcat.photoz_cdf(:g, 0.1, 'photoz-sdss', '2')", g=g) == (None,)


@pytest.mark.parametrize(("call", "message"), [
    ("healcat.photoz_pdf(:g, 0.1, 'photoz-sdss', '99')", r"model photoz-sdss has no version 99 \(versions: "),
    ("healcat.photoz_cdf(:g, 0.1, NULL)", r"model_name must not be NULL"),
    ("z_lo FROM healcat.photoz_interval(:g, 0.68, NULL, '1')", r"model_name must not be NULL"),
    ("model_id FROM healcat.resolve_model('photoz-sdss', '99')", r"InvalidParameterValue\) model photoz-sdss has no version 99 \(versions: "),
    ("model_id FROM healcat.resolve_model(NULL)", r"InvalidParameterValue\) model_name must not be NULL"),
    ("model_id FROM healcat.resolve_model('no-such', '1')", r"no model named 'no-such' \(version 1\)"),
])
def test_an_unknown_version_or_a_null_name_says_so(conn, catalog, call, message):
    """They said "no model named 'photoz-sdss' (version 99)" and "no model named <NULL>"."""
    raises(conn, call, message, g=galaxy(conn))


def test_a_model_with_no_current_version_says_so(conn, catalog):
    conn.execute(sa.text("UPDATE healcat.model SET retired_at = now() WHERE name = 'photoz-sdss'"))
    raises(conn, "model_id FROM healcat.resolve_model('photoz-sdss')",
           r"model photoz-sdss has no current version: none is promoted and unretired \(versions: ")


def test_the_downgrade_restores_every_function(engine, database_url):
    """0040's downgrade leaves every healcat function (definition, comment, ACL, settings) as 0039 made it."""
    before, upgraded, after = across_a_migration(engine, database_url, "0040", "0039")
    assert upgraded != before and len(upgraded) == len(before) + 2
    acl = {row[0]: row[3] for row in upgraded}  # the new functions' privileges are their neighbours'
    assert acl["healcat.nan_argument_error(text,text,double precision)"] == acl[
        "healcat.mixture_total(text,real[],real[],real[])"]
    assert acl["healcat.photoz_missing(text,bigint,text,text)"] == acl["healcat.photoz_pdf(bigint,double precision,text,text)"]
    assert after == before
