"""release withdrawal: a release published by mistake, or whose data was found wrong, is withdrawn

Revision ID: 0056
Revises: 0055
Create Date: 2026-12-06 23:00:00

- release.status may be 'withdrawn' (`healcat release withdraw NAME --reason TEXT`, ingest/publish.py):
  the release leaves its survey's order of releases, its rows, diff and predictions kept;
- release.withdrawn_at and release.withdrawn_reason, set exactly when it is withdrawn (a check).
The downgrade refuses, naming them, while releases are withdrawn: an older schema has no such state,
and superseded they would be back in their survey's order (restore them first).
"""

import sqlalchemy as sa
from alembic import op

revision = '0056'
down_revision = '0055'
branch_labels = None
depends_on = None

STATUS = "status IN ('published', 'superseded', 'withdrawn')"
WITHDRAWN = "(status = 'withdrawn') = (withdrawn_at IS NOT NULL AND withdrawn_reason IS NOT NULL)"


def upgrade() -> None:
    op.add_column('release', sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True), schema='healcat')
    op.add_column('release', sa.Column('withdrawn_reason', sa.Text(), nullable=True,
                                       comment='why the operator withdrew it'), schema='healcat')
    op.drop_constraint(op.f('ck_release_status'), 'release', schema='healcat', type_='check')
    op.create_check_constraint(op.f('ck_release_status'), 'release', STATUS, schema='healcat')
    op.create_check_constraint(op.f('ck_release_withdrawn'), 'release', WITHDRAWN, schema='healcat')
    op.alter_column('release', 'status', schema='healcat', comment=(
        "published; superseded once a newer release of the survey replaces it; withdrawn by an operator "
        "(healcat release withdraw): out of the survey's order, its rows kept"))


def downgrade() -> None:
    # An older schema has no withdrawal: a withdrawn release made superseded would be back in its
    # survey's order (the newest superseded under an older published one, the next release's diff
    # against the one before it). Say so before anything changes (the downgrade is one transaction).
    withdrawn = op.get_bind().execute(sa.text(
        "SELECT name FROM healcat.release WHERE status = 'withdrawn' ORDER BY name")).scalars().all()
    if withdrawn:
        raise RuntimeError(
            f"healcat downgrade below 0056: {len(withdrawn)} release(s) are withdrawn ({', '.join(withdrawn)}), a "
            "state that does not exist before 0056; nothing was changed. Restore them (healcat release restore "
            "NAME) or delete them, then downgrade again")
    op.drop_constraint(op.f('ck_release_withdrawn'), 'release', schema='healcat', type_='check')
    op.drop_constraint(op.f('ck_release_status'), 'release', schema='healcat', type_='check')
    op.create_check_constraint(op.f('ck_release_status'), 'release', "status IN ('published', 'superseded')",
                               schema='healcat')
    op.alter_column('release', 'status', schema='healcat',
                    comment="published; superseded once a newer release of the survey replaces it")
    op.drop_column('release', 'withdrawn_reason', schema='healcat')
    op.drop_column('release', 'withdrawn_at', schema='healcat')
