"""cone cover v3 (cone_v3.sql): small cones take their seed pixels as the cover, with no descent

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 07:30:00

sql/cone_v3.sql renames cone_v2.sql's healcat.hpx_cone_cover(ra, dec, radius, stop_order) to
hpx_cone_descent and defines hpx_cone_cover over it: no descent for cones whose seed pixels hold few
sources, and the descent two orders coarser. The downgrade drops the new function and renames the
descent back.
"""

from alembic import op

from migrations.functions import restore_comment, run_sql_file

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("cone_v3.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION healcat.hpx_cone_cover(float8, float8, float8, int)")
    op.execute("ALTER FUNCTION healcat.hpx_cone_descent(float8, float8, float8, int) RENAME TO hpx_cone_cover")
    restore_comment("cone_v2.sql", "hpx_cone_cover(float8, float8, float8, int)")
