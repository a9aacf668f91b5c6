"""a cross-match input keyed on row_id skips the pass that counts its row_ids, and best mode reads it
as an unkeyed one (sql/xmatch_v8.sql)

Revision ID: 0050
Revises: 0049
Create Date: 2026-12-06 12:40:00

check_xmatch_input counted every row_id of the input (a hash aggregate: 0.5-0.6 s per million rows
on the 2-core machine) to refuse a repeated or NULL one. A table whose row_id is its primary key,
or has a unique, immediate, non-partial index on row_id alone and is NOT NULL, cannot hold either:
the check now reads that from the catalog and skips the pass. xmatch_table's best mode reads the
input's row_ids through a fenced subquery: a key let the planner walk the input in key order (7.8 s
against 5.6-5.9 s for 1,000,000 rows). The downgrade restores xmatch_v4's check and xmatch_v5's
xmatch_table.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0050'
down_revision = '0049'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("xmatch_v8.sql")


def downgrade() -> None:
    restore_functions("xmatch_v4.sql", ["check_xmatch_input"])
    restore_functions("xmatch_v5.sql", ["xmatch_table"])
