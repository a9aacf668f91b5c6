"""cluster subgroups: cluster.parent_id

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 07:00:00

An association made of subgroups of different ages (Sco-Cen's Upper Sco, UCL, ...; Taurus's
groups) keeps one healcat.cluster row per subgroup, with its own literature age, pointing at the
association's row (parent_id; the parent has no age of its own). Rotation periods attach to the
subgroup. Rows loaded before this revision keep the association's name and first-seen age until
their release is ingested again.
"""


import sqlalchemy as sa
from alembic import op

from migrations.functions import REINGEST, warn_dropping

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('cluster', sa.Column(
        'parent_id', sa.Integer(), nullable=True,
        comment='the association this cluster is a subgroup of (e.g. Upper Sco -> Sco-Cen); NULL for a cluster of its own'),
        schema='healcat')
    op.create_foreign_key(op.f('fk_cluster_parent_id_cluster'), 'cluster', 'cluster', ['parent_id'], ['cluster_id'],
                          source_schema='healcat', referent_schema='healcat')


def downgrade() -> None:
    warn_dropping('0013', 'cluster', ['parent_id'],
                  "the subgroups (Upper Sco, ...) name no association: their releases' rotation periods "
                  "get it back once loaded again: " + REINGEST)
    op.drop_constraint(op.f('fk_cluster_parent_id_cluster'), 'cluster', schema='healcat', type_='foreignkey')
    op.drop_column('cluster', 'parent_id', schema='healcat')
