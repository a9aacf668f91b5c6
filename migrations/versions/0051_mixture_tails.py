"""a Gaussian mixture truncated where nearly all of it lies below the bound, and quantiles far in a
tail (sql/ml_v7.sql)

Revision ID: 0051
Revises: 0050
Create Date: 2026-12-06 13:30:00

The truncated mixture functions (x, lower) divided by 1 - mixture_cdf(lower) and subtracted
cdf(lower) from cdf(x), which cancel where almost all the mass lies below the bound (a unit
Gaussian at -8 truncated at 0: interval [0.0023, 0.161] for [0.0214, 0.223]; at -9, NULL). The new
healcat.mixture_sf sums the tail above a point as itself; mixture_cdf and mixture_pdf (x, lower) go
through it, and the new mixture_quantile(..., q, lower), the one bisection, through both forms:
mixture_interval is two of them, and mixture_quantile(..., q) is it with lower -Infinity (its bracket
stopped at mean - 10 sigma). The downgrade restores ml_v5.sql's truncated functions and
ml_v4.sql's mixture_quantile, and drops mixture_sf.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0051'
down_revision = '0050'
branch_labels = None
depends_on = None

TRUNCATED = "(weights real[], means real[], sigmas real[], x float8, lower float8)"


def upgrade() -> None:
    run_sql_file("ml_v7.sql")


def downgrade() -> None:
    restore_functions("ml_v5.sql", [f"mixture_cdf{TRUNCATED}", f"mixture_pdf{TRUNCATED}", "mixture_interval"])
    restore_functions("ml_v4.sql", ["mixture_quantile"])
    op.execute("DROP FUNCTION healcat.mixture_sf(real[], real[], real[], float8), "
               "healcat.mixture_quantile(real[], real[], real[], float8, float8), healcat.mixture_term(float8, float8)")
