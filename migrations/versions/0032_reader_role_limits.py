"""the read-only role's limits where a reader cannot lift them, re-asserted by every healcat db up

Revision ID: 0032
Revises: 0029
Create Date: 2026-12-05 12:00:00

PostgreSQL lets healcat_reader ALTER ROLE itself: its statement_timeout, work_mem and other
defaults (for every session of the role, healcat serve's included) and its password.
healcat.assert_reader_role() (sql/reader_role_v1.sql) resets what a reader set and gives the role
statement_timeout 60 s, idle_in_transaction_session_timeout 5 min, temp_file_limit 2 GB (a
superuser-only setting: the reader cannot lift it) and a CONNECTION LIMIT of a third of
max_connections, at most 40 (a role cannot change its own); catalog.db.migrate runs it after
every upgrade, with HEALCAT_READER_PASSWORD when set. Only the migrating role runs it (a superuser,
or it warns). The sessions healcat opens as the reader set their own limits too
(catalog.db.READER_SESSION). TEMP on the database stays granted: crossmatch() as the reader
uploads its positions to a temporary table.
"""

from alembic import op

from migrations.functions import run_sql_file

revision = '0032'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("reader_role_v1.sql")
    op.execute("SELECT healcat.assert_reader_role()")


def downgrade() -> None:
    op.execute("DROP FUNCTION healcat.assert_reader_role()")
    op.execute("""
        DO $$
        BEGIN
            ALTER ROLE healcat_reader RESET idle_in_transaction_session_timeout;
            ALTER ROLE healcat_reader RESET temp_file_limit;
            ALTER ROLE healcat_reader CONNECTION LIMIT -1;
        EXCEPTION WHEN insufficient_privilege OR undefined_object THEN
            RAISE WARNING 'healcat: user % may not alter role healcat_reader: its limits stay', current_user;
        END $$""")
