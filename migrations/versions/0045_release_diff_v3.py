"""release diffs see proper motions, compare numbers in attrs by value (sql/releases_v3.sql)

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-05 22:20:00

sql/releases_v3.sql replaces healcat.source_fingerprint and healcat.per_release_fingerprint (same
signatures): the source's part now holds its proper motions and their epoch (a release that only
revised them was 'changed 0'), and attrs (a source's, a rotation period's) are compared with each
top-level number as trim_scale(value::numeric), so that 5863 and 5863.0 are one value (a CSV
column typed float in one chunk made every object of a release 'changed'). The diff of a joining
release's rows (on another survey's sources) is ingest/publish.py's, with no schema of its own.
The downgrade restores releases_v2.sql's definitions (and their pinned search_path).
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0045'
down_revision = '0044'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("releases_v3.sql")


def downgrade() -> None:
    restore_functions("releases_v2.sql", ["per_release_fingerprint", "source_fingerprint"])
    # CREATE OR REPLACE drops a function's SET clauses: pin them again as releases_v2.sql does.
    op.execute("ALTER FUNCTION healcat.per_release_fingerprint(smallint, bigint, integer) "
               "SET search_path = pg_catalog, healcat")
    op.execute("ALTER FUNCTION healcat.source_fingerprint(smallint, bigint) SET search_path = pg_catalog, healcat")
