"""the Gaussian-mixture functions' far tails, as far as a float8 holds them (sql/ml_v8.sql)

Revision ID: 0054
Revises: 0053
Create Date: 2026-12-06 19:20:00

A tail term below 1e-250 counted as 0 (ml_v7.sql), so quantiles stopped near 33.8 sigma and
mixture_sf(37 sigma) was 0; the plain mixture_cdf (ml_v5.sql's) clamped erfc's argument at +-8, a
floor of 5.6e-30 below -11.3 sigma; the density stopped at 37 sigma. healcat.mixture_term now takes
a component's share of the weights and keeps terms down to 1e-304; the new mixture_tail sums either
tail through it (mixture_sf's and mixture_cdf's one body), mixture_quantile too (its terms written out
in its loop: mixture_interval 2.5-3x faster), and mixture_pdf reads the shares out to 38 sigma. The downgrade restores ml_v7.sql's mixture_term, mixture_sf and
mixture_quantile and ml_v5.sql's mixture_cdf and mixture_pdf, removes mixture_term's comment (it had
none) and drops mixture_tail.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0054'
down_revision = '0053'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("ml_v8.sql")


def downgrade() -> None:
    restore_functions("ml_v7.sql", ["mixture_term", "mixture_sf",
                                    "mixture_quantile(weights real[], means real[], sigmas real[], q float8, lower float8)"])
    restore_functions("ml_v5.sql", ["mixture_cdf(weights real[], means real[], sigmas real[], x float8)",
                                    "mixture_pdf(weights real[], means real[], sigmas real[], x float8)"])
    op.execute("COMMENT ON FUNCTION healcat.mixture_term(float8, float8) IS NULL")
    op.execute("DROP FUNCTION healcat.mixture_tail(text, real[], real[], real[], float8, boolean)")
