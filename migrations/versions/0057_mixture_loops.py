"""the mixture's total, tails and density in PL/pgSQL loops (sql/ml_v9.sql)

Revision ID: 0057
Revises: 0056
Create Date: 2026-12-06 23:40:00

`python -m benchmarks mixture` measured ml_v8.sql's CDFs 1.7x and density 1.13x slower than the
definitions migration 0054 replaced: SQL functions over mixture_components, the total a window, a
mixture_term call per component. mixture_total, mixture_tail (behind mixture_cdf and mixture_sf)
and mixture_pdf are now each one loop over the arrays, summing the same terms in the same order
(bit-equal to ml_v8.sql's, tested); where ml_v8.sql was wrong, they differ (sql/ml_v9.sql's header).
The benchmark then measured the CDFs 1.7-2.0x and the density 2.6-2.9x faster than before 0054.
mixture_term and mixture_components, which nothing calls now, are dropped. The downgrade restores
ml_v4.sql's mixture_components and mixture_total and ml_v8.sql's mixture_term (with its comment),
mixture_tail and mixture_pdf.
"""

from migrations.functions import restore_comment, restore_functions, run_sql_file

revision = '0057'
down_revision = '0056'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("ml_v9.sql")


def downgrade() -> None:
    restore_functions("ml_v4.sql", ["mixture_components", "mixture_total"])
    restore_functions("ml_v8.sql", ["mixture_term", "mixture_tail",
                                    "mixture_pdf(weights real[], means real[], sigmas real[], x float8)"])
    restore_comment("ml_v8.sql", "mixture_term(float8, float8)")
