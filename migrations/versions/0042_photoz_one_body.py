"""photoz_pdf and photoz_cdf through one body, healcat.photoz_evaluate (sql/ml_v6.sql)

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-05 19:40:00

ml_v5.sql's photoz_pdf and photoz_cdf were one PL/pgSQL function twice, but for mixture_pdf or
mixture_cdf; both now call healcat.photoz_evaluate (same arguments, answers and errors). The
downgrade restores ml_v5.sql's and drops photoz_evaluate.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0042'
down_revision = '0041'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("ml_v6.sql")


def downgrade() -> None:
    restore_functions("ml_v5.sql", ["photoz_pdf", "photoz_cdf"])
    op.execute("DROP FUNCTION healcat.photoz_evaluate(text, bigint, float8, text, text)")
