"""cone search v2: a cover seeded at the cone's own scale, stopped where pixels hold about one source

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 07:00:00

sql/cone_v2.sql: healcat.hpx_cone_cover(ra, dec, radius, stop_order) and cover_stop_order(); the
three-argument cover and healcat.cone_search are replaced by versions using them;
sources_near_ranges computes a cone's distances once, and sources_in_ranges and cone_in_ranges
are written over it. The downgrade restores the healpix_v1.sql, queries_v1.sql and
regions_v1.sql definitions verbatim.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("cone_v2.sql")


def downgrade() -> None:
    restore_functions("healpix_v1.sql", ["hpx_cone_cover"])
    restore_functions("queries_v1.sql", ["cone_search"])
    restore_functions("regions_v1.sql", ["sources_in_ranges", "cone_in_ranges"])
    op.execute("DROP FUNCTION healcat.hpx_cone_cover(float8, float8, float8, int), healcat.cover_stop_order(), "
               "healcat.sources_near_ranges(bigint[], bigint[], integer, float8, float8)")
