"""region searches, version 2 (sql/regions_v2.sql): faster polygons, tighter box covers, the pole
in boxes, RA limits, and one MOC grammar shared with Python

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 06:30:00

sql/regions_v2.sql replaces, with the same signatures, check_box and check_ellipse (RA within
+-1e9 deg), ellipse_search (RA modulo 360 on entry), box_contains (a pole has every RA), box_cover
(cut along Dec as well as RA), segments_touch (PL/pgSQL), polygon_in_ranges (one PL/pgSQL loop over
the candidates, testing only the edges of the candidate's slab), polygon_search (covered by the new
polygon_cover: cones over the tangent-plane cells the polygon meets) and moc_ranges (the grammar and
errors of catalog.healpix.moc_text_ranges); it replaces polygon_prepare with one of more outputs,
adds tangent_xyw, tangent_radec and quoted_short, and drops gnomonic and plane_polygon_contains. The downgrade
restores regions_v1.sql's and queries_v2.sql's definitions verbatim.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("regions_v2.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION healcat.polygon_prepare(float8[])")
    op.execute("DROP FUNCTION healcat.polygon_cover(float8[], float8[], float8[])")
    restore_functions("regions_v1.sql", ["check_box", "box_contains", "box_cover", "ellipse_search", "polygon_prepare",
                                         "gnomonic", "segments_touch", "plane_polygon_contains", "polygon_in_ranges",
                                         "polygon_search", "moc_ranges"])
    restore_functions("queries_v2.sql", ["check_ellipse"])
    op.execute("DROP FUNCTION healcat.tangent_radec(float8, float8, float8[])")
    op.execute("DROP FUNCTION healcat.tangent_xyw(float8, float8, float8[])")
    op.execute("DROP FUNCTION healcat.quoted_short(text)")
