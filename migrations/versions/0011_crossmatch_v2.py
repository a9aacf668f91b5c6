"""cross-match v2 (crossmatch_v2.sql): probe pixels scanned in hpx order; proper motions on source, matches at an epoch

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 07:00:00

- source.pmra_masyr, pmdec_masyr [mas/yr, RA's times cos(dec)] and ref_epoch_yr [Julian year],
  nullable, both proper motions or neither, and an epoch with them;
- crossmatch_v2.sql: healcat.xmatch_probe_order, hpx_xmatch_probe_cover, pm_propagate,
  xmatch_pm_pad_arcsec, xmatch_search_radius_arcsec, check_epoch are new; xmatch_core,
  xmatch_table and xmatch_releases are replaced (the last two gain epoch_yr DEFAULT NULL).
A downgrade drops them and restores crossmatch_v1.sql's definitions, then the columns.
"""

import sqlalchemy as sa
from alembic import op

from migrations.functions import REINGEST, run_sql_file, warn_dropping

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


PM_CHECK = "(pmra_masyr IS NULL) = (pmdec_masyr IS NULL) AND (pmra_masyr IS NULL OR ref_epoch_yr IS NOT NULL)"


def upgrade() -> None:
    op.add_column('source', sa.Column('pmra_masyr', sa.Double(), nullable=True,
                                      comment='proper motion in RA, mu_alpha* = mu_alpha cos(dec) [mas/yr]'),
                  schema='healcat')
    op.add_column('source', sa.Column('pmdec_masyr', sa.Double(), nullable=True,
                                      comment='proper motion in Dec [mas/yr]'), schema='healcat')
    op.add_column('source', sa.Column('ref_epoch_yr', sa.Double(), nullable=True,
                                      comment='epoch of ra, dec and the proper motions [Julian year, e.g. 2016.0]'),
                  schema='healcat')
    op.create_check_constraint(op.f('ck_source_proper_motion_complete'), 'source', PM_CHECK, schema='healcat')
    run_sql_file("crossmatch_v2.sql")


def downgrade() -> None:
    warn_dropping('0011', 'source', ['pmra_masyr', 'pmdec_masyr', 'ref_epoch_yr'],
                  "the proper motions are NULL: " + REINGEST)
    op.execute("""
        DROP FUNCTION healcat.xmatch_releases, healcat.xmatch_table, healcat.xmatch_core,
            healcat.hpx_xmatch_probe_cover, healcat.xmatch_probe_order, healcat.pm_propagate,
            healcat.xmatch_pm_pad_arcsec, healcat.xmatch_search_radius_arcsec, healcat.check_epoch,
            healcat.resolve_release, healcat.check_xmatch, healcat.hpx_xmatch_cover, healcat.xmatch_order;
    """)
    run_sql_file("crossmatch_v1.sql")
    op.drop_constraint(op.f('ck_source_proper_motion_complete'), 'source', schema='healcat', type_='check')
    for column in ('ref_epoch_yr', 'pmdec_masyr', 'pmra_masyr'):
        op.drop_column('source', column, schema='healcat')
