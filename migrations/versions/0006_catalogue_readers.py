"""catalogue readers: stellar_mass per SED code; rotation periods keyed by release, with reference and attrs

Rows without a position may attach to another release's source (joined by an external id), so
the per-object tables such rows feed carry their release in the key.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 04:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stellar_mass',
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False, comment='the SED-fitting code, e.g. prospector'),
    sa.Column('log_mass_msun', sa.Double(), nullable=False, comment='log10 stellar mass [Msun], median'),
    sa.Column('log_mass_p16_msun', sa.Double(), nullable=True, comment='16th percentile [log10 Msun]'),
    sa.Column('log_mass_p84_msun', sa.Double(), nullable=True, comment='84th percentile [log10 Msun]'),
    sa.Column('log_sfr_msun_yr', sa.Double(), nullable=True, comment='log10 SFR [Msun/yr], median'),
    sa.Column('log_sfr_p16_msun_yr', sa.Double(), nullable=True),
    sa.Column('log_sfr_p84_msun_yr', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['healcat.release.release_id'], name=op.f('fk_stellar_mass_release_id_release'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shard', 'source_id'], ['healcat.source.shard', 'healcat.source.source_id'], name='fk_stellar_mass_source', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shard', 'source_id', 'release_id', name=op.f('pk_stellar_mass')),
    schema='healcat'
    )
    # No loader wrote rotation periods before this revision, so the table is empty and the new key
    # column needs no default.
    op.add_column('rotation_period', sa.Column('release_id', sa.Integer(), nullable=False), schema='healcat')
    op.add_column('rotation_period', sa.Column('reference', sa.Text(), nullable=True, comment='where the period was published'), schema='healcat')
    op.add_column('rotation_period', sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False), schema='healcat')
    op.create_foreign_key(op.f('fk_rotation_period_release_id_release'), 'rotation_period', 'release', ['release_id'], ['release_id'], source_schema='healcat', referent_schema='healcat', ondelete='CASCADE')
    op.drop_constraint('pk_rotation_period', 'rotation_period', schema='healcat', type_='primary')
    op.create_primary_key('pk_rotation_period', 'rotation_period', ['shard', 'source_id', 'release_id'], schema='healcat')


def downgrade() -> None:
    op.drop_constraint('pk_rotation_period', 'rotation_period', schema='healcat', type_='primary')
    op.execute("DELETE FROM healcat.rotation_period")  # the old key cannot hold several releases' periods
    op.create_primary_key('pk_rotation_period', 'rotation_period', ['shard', 'source_id'], schema='healcat')
    op.drop_constraint(op.f('fk_rotation_period_release_id_release'), 'rotation_period', schema='healcat', type_='foreignkey')
    op.drop_column('rotation_period', 'attrs', schema='healcat')
    op.drop_column('rotation_period', 'reference', schema='healcat')
    op.drop_column('rotation_period', 'release_id', schema='healcat')
    op.drop_table('stellar_mass', schema='healcat')
