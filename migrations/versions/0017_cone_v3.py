"""cone cover v3 (cone_v3.sql): small cones take their seed pixels as the cover, with no descent

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 07:30:00

sql/cone_v3.sql replaces healcat.hpx_cone_cover(ra, dec, radius, stop_order) with cone_v2.sql's
definition plus a fast path for cones whose seed pixels hold few sources. The downgrade restores
cone_v2.sql's definition verbatim.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("cone_v3.sql")


def downgrade() -> None:
    restore_functions("cone_v2.sql", ["hpx_cone_cover"])
