"""region queries: box, spherical polygon, ellipse, MOC, k nearest neighbours, sky density

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 04:10:00

The SQL functions of sql/regions_v1.sql, each pinned to a search_path like 0001's. No tables.
"""

from pathlib import Path

from alembic import op

SQL = Path(__file__).parent / "sql"

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
    op.execute((SQL / "regions_v1.sql").read_text())
    # As in 0001: the PL/pgSQL functions resolve healcat's names whatever the caller's search_path.
    op.execute(
        """
        DO $$
        DECLARE
            f regprocedure;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
                     WHERE p.pronamespace = 'healcat'::regnamespace AND l.lanname = 'plpgsql'
                       AND p.proconfig IS NULL LOOP
                EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, healcat', f);
            END LOOP;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {', '.join(FUNCTIONS)}")
