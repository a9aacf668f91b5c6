"""cross-match v4 (sky_v4.sql): probe pixels without a materialized CTE, a given cover without VALUES

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 10:40:00

sql/sky_v4.sql replaces healcat.xmatch_prepare (the probe pixels come from a subquery fenced by
OFFSET 0 instead of a materialized CTE) and healcat.xmatch_table (a cover given as pix0..pix3 is
read by four scans of the input joined by UNION ALL instead of a VALUES list per row). Same rows.
The downgrade restores sky_v3.sql's definitions verbatim.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("sky_v4.sql")


def downgrade() -> None:
    restore_functions("sky_v3.sql", ["xmatch_prepare", "xmatch_table"])
