"""region queries: box, spherical polygon, ellipse, MOC, k nearest neighbours, sky density

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 04:10:00

The SQL functions of sql/regions_v1.sql, each pinned to a search_path like 0001's. No tables.
"""

from alembic import op

from migrations.functions import run_sql_file

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

#: Every function regions_v1.sql creates, dropped by downgrade (the argument lists tell overloads apart).
FUNCTIONS = [
    "healcat.sky_density(integer, text)",
    "healcat.moc_search(text, text)",
    "healcat.moc_ranges(text)",
    "healcat.polygon_search(float8[], text)",
    "healcat.polygon_in_ranges(bigint[], bigint[], integer, float8[])",
    "healcat.plane_polygon_contains(float8, float8, float8[], float8[])",
    "healcat.segments_touch(float8, float8, float8, float8, float8, float8, float8, float8)",
    "healcat.polygon_prepare(float8[])",
    "healcat.gnomonic(float8, float8, float8, float8)",
    "healcat.ellipse_search(float8, float8, float8, float8, float8, text)",
    "healcat.ellipse_in_ranges(bigint[], bigint[], integer, float8, float8, float8, float8, float8)",
    "healcat.ellipse_foci(float8, float8, float8, float8, float8)",
    "healcat.offset_by(float8, float8, float8, float8)",
    "healcat.check_ellipse(float8, float8, float8, float8, float8)",
    "healcat.box_search(float8, float8, float8, float8, text)",
    "healcat.box_in_ranges(bigint[], bigint[], integer, float8, float8, float8, float8)",
    "healcat.box_cover(float8, float8, float8, float8)",
    "healcat.box_contains(float8, float8, float8, float8, float8, float8)",
    "healcat.box_ra_width_deg(float8, float8)",
    "healcat.check_box(float8, float8, float8, float8)",
    "healcat.nearest(float8, float8, integer, text)",
    "healcat.cone_in_ranges(bigint[], bigint[], integer, float8, float8, float8)",
    "healcat.sources_in_ranges(bigint[], bigint[], integer)",
    "healcat.merge_ranges(bigint[], bigint[])",
    "healcat.wrap_ra_deg(float8)",
    "healcat.release_id_of(text, text)",
    "healcat.check_arg(text, text, float8, float8, float8, boolean)",
]


def upgrade() -> None:
    run_sql_file("regions_v1.sql")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {', '.join(FUNCTIONS)}")
