"""mixture functions: relative weights, bad components refused, NULL intervals (sql/ml_v4.sql)

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-05 13:00:00

mixture_pdf, mixture_cdf and mixture_quantile divide by the weights' sum (stored float4 weights sum
to 1 within a few 1e-7, so a CDF at +inf came out 1.0000001; weights summing to 0.9999998 moved a
truncated mixture's interval by 2x) and refuse a sigma <= 0, a negative or non-finite weight and a
non-finite mean (a division by zero, a negative CDF); mixture_interval with a lower bound answers
NULL where the mixture keeps nothing above it or the bound is NULL. The downgrade restores ml_v1's
mixture_quantile, ml_v2's mixture_pdf and mixture_cdf and ml_v3's mixture_interval.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("ml_v4.sql")


def downgrade() -> None:
    restore_functions("ml_v1.sql", ["mixture_quantile"])
    restore_functions("ml_v2.sql", ["mixture_pdf", "mixture_cdf"])
    restore_functions("ml_v3.sql", ["mixture_interval"])  # the first match: the five-argument one
    op.execute("DROP FUNCTION healcat.mixture_total(text, real[], real[], real[]), "
               "healcat.mixture_components(real[], real[], real[])")
