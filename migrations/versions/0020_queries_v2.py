"""query fixes (sql/queries_v2.sql): searches use the newest model version that has run; ellipse,
photo-z and mixture arguments that gave silent answers

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 00:10:00

sql/queries_v2.sql replaces, with the same signatures, healcat.resolve_model (no version named: the
newest unretired version with a finished run), check_ellipse (semi-major axis below 90 deg),
photoz_prediction (an unknown or non-photo-z model name is an error) and mixture_pdf / mixture_cdf
(NaN in, NaN out; a density of 0 far out), cone_search and nearest (RA modulo 360 on entry) and
xmatch_table (its input's columns checked first, by the new check_xmatch_input) and similar_sources
(no version named: the version current on the query source's release). The downgrade
restores the earlier definitions verbatim and drops check_xmatch_input.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("queries_v2.sql")


def downgrade() -> None:
    restore_functions("queries_v1.sql", ["resolve_model"])
    restore_functions("regions_v1.sql", ["check_ellipse"])
    restore_functions("ml_v1.sql", ["photoz_prediction", "mixture_pdf", "mixture_cdf"])
    restore_functions("cone_v2.sql", ["cone_search"])
    restore_functions("regions_v1.sql", ["nearest"])
    restore_functions("sky_v4.sql", ["xmatch_table"])
    restore_functions("similarity_v1.sql", ["similar_sources"])
    op.execute("DROP FUNCTION healcat.check_xmatch_input(regclass)")
