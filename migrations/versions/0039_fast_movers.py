"""fast movers apart in a cross-match at an epoch (sql/xmatch_v5.sql)

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-05 18:30:00

At an epoch the search around every input row was padded by the largest displacement of any source
read, so one fast star (Barnard's: 10.4 arcsec/yr) widened every row's search, and a distant epoch
was refused. Now sources moving further than healcat.xmatch_slow_pad_arcsec (the radius, at least 10
arcsec) are matched apart: moved to the epoch and hashed against the input's cover for the radius;
the search around each row is padded by the slow pad only. xmatch_prepare and xmatch_core take the
fast movers' cover (new signatures); xmatch_table and xmatch_releases build it.

The downgrade drops the new functions and restores sky_v3.sql's xmatch_core, sky_v4.sql's comment
on xmatch_prepare with spatial_v1.sql's definition, queries_v2.sql's xmatch_table and spatial_v1.sql's
xmatch_releases.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0039'
down_revision = '0038'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("xmatch_v5.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION healcat.xmatch_core(text, text, text, bigint, float8, int, int, integer, text, float8, "
               "float8)")
    op.execute("DROP FUNCTION healcat.xmatch_prepare(text, text, text, bigint, int, int, integer, text, float8)")
    op.execute("DROP FUNCTION healcat.xmatch_cover_query(text, float8), "
               "healcat.xmatch_slow_pad_arcsec(float8, float8), healcat.pm_displacement_arcsec(float8, float8, float8)")
    restore_functions("sky_v3.sql", ["xmatch_core"])
    restore_functions("spatial_v1.sql", ["xmatch_prepare", "xmatch_releases"])
    op.execute("COMMENT ON FUNCTION healcat.xmatch_prepare(text, text, bigint, int, integer, text, float8) IS "
               "'The cross-match statement (parameters: radius [deg], release_id, epoch_yr) for an input and its probe "
               "pixels; sets its planner settings local to the transaction.'")
    restore_functions("queries_v2.sql", ["xmatch_table"])
