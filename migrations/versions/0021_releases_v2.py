"""release diffs see per-object data (sql/releases_v2.sql): a changed light curve or spectrum makes
its object 'changed'

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 00:40:00

sql/releases_v2.sql replaces healcat.source_fingerprint (same signature) with one that also covers
the object's rows in the per-release tables its own release wrote (healcat.per_release_fingerprint,
new). The downgrade restores releases_v1.sql's definition and drops the new function.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("releases_v2.sql")


def downgrade() -> None:
    restore_functions("releases_v1.sql", ["source_fingerprint"])
    op.execute("ALTER FUNCTION healcat.source_fingerprint(smallint, bigint) SET search_path = pg_catalog, healcat")
    op.execute("DROP FUNCTION healcat.per_release_fingerprint(smallint, bigint, integer)")
