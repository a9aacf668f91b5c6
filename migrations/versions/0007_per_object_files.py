"""per-object files: spectra and light curves per release, class labels, unnest views

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 04:20:00

spectrum and light_curve (empty until now) get the release they were read from;
spectrum gets its pixel mask, ivar unit, MJD and file; light_curve says how its
times became MJD; a new table label holds class labels per taxonomy. The views
of sql/perobject_v1.sql unnest a light curve into (time, mag, err, band) rows and
a spectrum into (wavelength, flux, ivar, mask) rows.
"""


import sqlalchemy as sa
from alembic import op

from migrations.functions import run_sql_file

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _release_fk(table: str, comment: str) -> None:
    op.add_column(table, sa.Column('release_id', sa.Integer(), nullable=False, comment=comment), schema='healcat')
    op.create_foreign_key(op.f(f'fk_{table}_release_id_release'), table, 'release', ['release_id'], ['release_id'],
                          source_schema='healcat', referent_schema='healcat', ondelete='CASCADE')
    op.create_index(op.f(f'ix_healcat_{table}_release_id'), table, ['release_id'], unique=False, schema='healcat')


def upgrade() -> None:
    _release_fk('spectrum', 'the release the spectrum was read from (its source may belong to an earlier one)')
    op.add_column('spectrum', sa.Column('mask', sa.ARRAY(sa.Integer()), nullable=True,
                                        comment='survey pixel mask, e.g. SDSS and_mask (0 = good)'), schema='healcat')
    op.add_column('spectrum', sa.Column('ivar_unit', sa.Text(), nullable=True,
                                        comment='astropy unit string of ivar: flux_unit**-2'), schema='healcat')
    op.add_column('spectrum', sa.Column('mjd', sa.Double(), nullable=True,
                                        comment="[MJD] observation (SDSS: the plate's MJD)"), schema='healcat')
    op.add_column('spectrum', sa.Column('file', sa.Text(), nullable=True,
                                        comment='the file it was read from, relative to the data folder'), schema='healcat')
    _release_fk('light_curve', 'the release the curve was read from')
    op.add_column('light_curve', sa.Column('time_origin', sa.Text(), server_default='MJD', nullable=False,
                                           comment="how time_mjd was obtained from the file's times, e.g. 'MJD as published'"),
                  schema='healcat')
    op.create_table('label',
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('taxonomy', sa.Text(), nullable=False, comment='whose classes, e.g. eros2_ramp_type'),
    sa.Column('label', sa.Text(), nullable=False, comment='the class as the dataset spells it'),
    sa.Column('split', sa.Text(), nullable=True, comment='train/test as the dataset publishes it, if it does'),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['healcat.release.release_id'], name=op.f('fk_label_release_id_release'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shard', 'source_id'], ['healcat.source.shard', 'healcat.source.source_id'], name='fk_label_source', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shard', 'source_id', 'taxonomy', name=op.f('pk_label')),
    schema='healcat'
    )
    op.create_index('ix_label_taxonomy_label', 'label', ['taxonomy', 'label'], unique=False, schema='healcat')
    op.create_index(op.f('ix_healcat_label_release_id'), 'label', ['release_id'], unique=False, schema='healcat')
    run_sql_file("perobject_v1.sql")


def downgrade() -> None:
    op.execute("DROP VIEW healcat.spectrum_pixels, healcat.light_curve_points")
    op.drop_table('label', schema='healcat')
    op.drop_column('light_curve', 'time_origin', schema='healcat')
    for table in ('light_curve', 'spectrum'):
        op.drop_index(op.f(f'ix_healcat_{table}_release_id'), table_name=table, schema='healcat')
        op.drop_constraint(op.f(f'fk_{table}_release_id_release'), table, schema='healcat', type_='foreignkey')
        op.drop_column(table, 'release_id', schema='healcat')
    for column in ('file', 'mjd', 'ivar_unit', 'mask'):
        op.drop_column('spectrum', column, schema='healcat')
