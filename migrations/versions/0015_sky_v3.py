"""cross-match v3 (sky_v3.sql): the statement built by xmatch_prepare, run by xmatch_table itself

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 04:00:00

sql/sky_v3.sql: healcat.xmatch_prepare is new (xmatch_core's statement, built but not run);
xmatch_core and xmatch_table are replaced by versions running it, so that xmatch_table stores its
rows once instead of twice, a release named once is not joined with every pair, and each
candidate's distance is computed once. The downgrade restores crossmatch_v2.sql's definitions
verbatim and drops xmatch_prepare.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("sky_v3.sql")


def downgrade() -> None:
    restore_functions("crossmatch_v2.sql", ["xmatch_core", "xmatch_table"])
    op.execute("DROP FUNCTION healcat.xmatch_prepare(text, text, bigint, int, integer, text, float8)")
