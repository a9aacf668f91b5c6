"""the ellipse's edge as the cone's: a source at the reported distance is inside (sql/regions_v4.sql)

Revision ID: 0055
Revises: 0054
Create Date: 2026-12-06 19:30:00

healcat.ellipse_in_ranges compared the sum of a source's distances to the two foci with 2a exactly:
a circle whose radius was the distance a search had reported for a source (semi-axes 593.3925485483893
arcsec) left that source out, 1 ulp over, where the cone of that radius found it. It now widens 2a by
healcat.inclusive_deg, as the cone does its radius. The Python ellipse_search runs the same function.
The downgrade restores regions_v1.sql's.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0055'
down_revision = '0054'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("regions_v4.sql")


def downgrade() -> None:
    restore_functions("regions_v1.sql", ["ellipse_in_ranges"])
