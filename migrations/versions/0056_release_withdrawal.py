"""release withdrawal: a release published by mistake, or whose data was found wrong, is withdrawn

Revision ID: 0056
Revises: 0055
Create Date: 2026-12-06 23:00:00

- release.status may be 'withdrawn' (`healcat release withdraw NAME --reason TEXT`, ingest/publish.py):
  the release leaves its survey's order of releases, its rows, diff and predictions kept;
- release.withdrawn_at and release.withdrawn_reason, set exactly when it is withdrawn (a check).
The downgrade puts withdrawn releases back as superseded, with a warning naming them: their
survey's published release stays the one that was (an older schema knows no other state).
"""

import sqlalchemy as sa
from alembic import op

from migrations.functions import log

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
    withdrawn = op.get_bind().execute(sa.text(
        "SELECT name FROM healcat.release WHERE status = 'withdrawn' ORDER BY name")).scalars().all()
    if withdrawn:
        log.warning("downgrade 0056: %d withdrawn release(s) become superseded (an older schema has no withdrawal): "
                    "%s", len(withdrawn), ", ".join(withdrawn))
    op.drop_constraint(op.f('ck_release_withdrawn'), 'release', schema='healcat', type_='check')
    op.execute("UPDATE healcat.release SET status = 'superseded' WHERE status = 'withdrawn'")
    op.drop_constraint(op.f('ck_release_status'), 'release', schema='healcat', type_='check')
    op.create_check_constraint(op.f('ck_release_status'), 'release', "status IN ('published', 'superseded')",
                               schema='healcat')
    op.alter_column('release', 'status', schema='healcat',
                    comment="published; superseded once a newer release of the survey replaces it")
    op.drop_column('release', 'withdrawn_reason', schema='healcat')
    op.drop_column('release', 'withdrawn_at', schema='healcat')
