"""an epoch cross-match finds its pad and fast movers through an index (sql/xmatch_v7.sql)

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-05 21:30:00

The pad of a cross-match at an epoch (the largest proper-motion displacement) and its fast movers
(sources moving further than the pad around each row) were each found by reading every source with
a proper motion in the releases matched, on every such cross-match: at Gaia's scale, minutes. The
partial index ix_source_pm on (release_id, ref_epoch_yr, total proper motion) answers both:
healcat.pm_epochs lists each release's reference epochs (a loose index scan) with the largest
motion at each, and the fast movers are an index range per epoch. The same pad and the same split
as before (xmatch_v7.sql's header). The downgrade restores xmatch_v5's xmatch_prepare and v6's pad,
and drops the function and the index.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0046'
down_revision = '0045'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("xmatch_v7.sql")


def downgrade() -> None:
    restore_functions("xmatch_v5.sql", ["xmatch_prepare"])
    restore_functions("xmatch_v6.sql", ["xmatch_pm_pad_arcsec"])
    op.execute("DROP FUNCTION healcat.pm_epochs(integer)")
    op.execute("DROP INDEX healcat.ix_source_pm")
