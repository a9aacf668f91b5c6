"""The SQL Gaussian-mixture functions on mixtures as they are stored (float4 weights summing to 1 only
within rounding) and as a user may pass them (relative weights, bad components), checked against
scipy's normal distribution."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from scipy.stats import norm


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


@pytest.mark.parametrize("function", ["mixture_pdf", "mixture_cdf", "mixture_quantile"])
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
