"""an astronomer's own read-only role gets the shared reader's limits (sql/reader_role_v2.sql)

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-05 21:10:00

`healcat db reader add NAME` makes a login role of its own for one astronomer, a member of the
group role healcat_astronomers, which inherits healcat_reader's privileges (and may not SET ROLE
to it): sessions of one astronomer cannot signal another's, as sessions of the one shared role
can. healcat.assert_reader_role() now also resets what each astronomer changed of their own role
and gives it healcat_reader's limits (CONNECTION LIMIT a tenth of max_connections, at most 10).
The downgrade restores reader_role_v1.sql's function; the roles stay (roles belong to the server,
not to the database).
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0043'
down_revision = '0042'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("reader_role_v2.sql")


def downgrade() -> None:
    restore_functions("reader_role_v1.sql", ["assert_reader_role"])
