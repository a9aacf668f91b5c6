"""an astronomer is a member of healcat_astronomers as `db reader add` grants it (sql/reader_role_v3.sql)

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-06 00:20:00

A member of healcat_astronomers counts as an astronomer (the reader's limits from
healcat.assert_reader_role, the watchdog's sweep, `healcat serve --reader`) only where its
membership is the one `healcat db reader add` grants: INHERIT TRUE, SET FALSE, no ADMIN OPTION, and
it is no superuser. On PostgreSQL 16+ a CREATEROLE owner that creates the group holds ADMIN OPTION
on it, and with createrole_self_grant set is a member too: it was taken for an astronomer. The
downgrade restores reader_role_v2.sql's function.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0048'
down_revision = '0047'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("reader_role_v3.sql")


def downgrade() -> None:
    restore_functions("reader_role_v2.sql", ["assert_reader_role"])
