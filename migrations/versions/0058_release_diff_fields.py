"""a release diff names what each changed object changed (sql/releases_v4.sql)

Revision ID: 0058
Revises: 0057
Create Date: 2026-12-08 10:00:00

release_change's 'changed' said only that an object's fingerprint (healcat.source_fingerprint, or
healcat.per_release_fingerprint for a joining release's rows on another survey's source) differs
from the previous release's. sql/releases_v4.sql adds healcat.source_changes and
healcat.per_release_changes, which split what those fingerprints compare into named parts
(position, proper_motion, ref_epoch, attrs.KEY, photometry.BAND, spec_redshift, source_xid.CATALOG,
the per-release tables) and return those that differ, so an object's fingerprints differ exactly
when the list is not empty; and healcat.change_fields, which takes a release_change row's key and
adds 'object_id' where the object was matched by position under a new id (`healcat release diff`'s
column `fields`). The fingerprints, and so the stored diffs, are unchanged. The downgrade drops the
new functions.
"""

from alembic import op

from migrations.functions import run_sql_file

revision = '0058'
down_revision = '0057'
branch_labels = None
depends_on = None

#: What releases_v4.sql adds, callers before callees.
FUNCTIONS = ["change_fields(integer, smallint, bigint)",
             "per_release_changes(smallint, bigint, integer, smallint, bigint, integer)",
             "source_changes(smallint, bigint, smallint, bigint)", "source_parts(smallint, bigint)",
             "per_release_parts(smallint, bigint, integer)", "canonical_attrs(jsonb)"]


def upgrade() -> None:
    run_sql_file("releases_v4.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION " + ", ".join(f"healcat.{f}" for f in FUNCTIONS))
