"""mixture functions v2 (sql/ml_v2.sql): arrays of different lengths are an error; a named
photo-z version's outputs from finished runs only

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 07:00:00

mixture_pdf and mixture_cdf (same signatures) refuse weights, means and sigmas of different lengths
(unnest padded the shorter with NULLs and the sum skipped them: mixture_pdf('{0.5,0.5}', '{0,1}',
'{1}', 0) returned 0.1995); photoz_prediction (so photoz_pdf and photoz_interval) with a version
named reads only finished runs' outputs; the downgrade restores queries_v2.sql's definitions.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("ml_v2.sql")


def downgrade() -> None:
    restore_functions("queries_v2.sql", ["mixture_pdf", "mixture_cdf", "photoz_prediction"])
    op.execute("DROP FUNCTION healcat.mixture_shape_error(text, real[], real[], real[])")
