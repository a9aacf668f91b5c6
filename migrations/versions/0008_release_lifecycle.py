"""release lifecycle and job chain: release_change, current_* views, job progress and parents, scheduler

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 04:20:00

- release.previous_release_id and release_change (new / changed / vanished objects against the
  survey's previous release); at most one published release per survey (a partial unique index);
- the views of sql/releases_v1.sql: current_release, current_source, current_photometry,
  current_spec_redshift, current_source_xid, failed_job; the function source_fingerprint;
- job: kind 'index', parent_job_id, progress_done / progress_total;
- scheduled_ingest: what the scheduler has queued, by release checksum.
"""


import sqlalchemy as sa
from alembic import op

from migrations.functions import run_sql_file

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('release', sa.Column(
        'previous_release_id', sa.Integer(), nullable=True,
        comment="the survey's release this one was compared with when published (release_change)"), schema='healcat')
    op.create_foreign_key(op.f('fk_release_previous_release_id_release'), 'release', 'release',
                          ['previous_release_id'], ['release_id'], source_schema='healcat', referent_schema='healcat')
    # Databases loaded before this revision may hold several published releases of one survey:
    # the newest stays published (the same order as ingest/publish.py).
    op.execute("""
        UPDATE healcat.release AS r SET status = 'superseded'
        WHERE r.status = 'published' AND EXISTS (
            SELECT 1 FROM healcat.release AS n
            WHERE n.survey_id = r.survey_id AND n.status = 'published'
              AND (coalesce(n.release_date, 'infinity'::date), n.release_id)
                > (coalesce(r.release_date, 'infinity'::date), r.release_id))
    """)
    op.create_index('uq_release_published_survey', 'release', ['survey_id'], unique=True, schema='healcat',
                    postgresql_where=sa.text("status = 'published'"))
    op.create_table('release_change',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('change', sa.Text(), nullable=False),
    sa.Column('previous_shard', sa.SmallInteger(), nullable=True),
    sa.Column('previous_source_id', sa.BigInteger(), nullable=True),
    sa.Column('matched_by', sa.Text(), nullable=True, comment='object_id, or position when the id changed'),
    sa.Column('separation_arcsec', sa.Double(), nullable=True, comment='between the two positions [arcsec]'),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("change IN ('new', 'changed', 'vanished')", name=op.f('ck_release_change_change')),
    sa.CheckConstraint("matched_by IN ('object_id', 'position')", name=op.f('ck_release_change_matched_by')),
    sa.ForeignKeyConstraint(['release_id'], ['healcat.release.release_id'],
                            name=op.f('fk_release_change_release_id_release'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shard', 'source_id'], ['healcat.source.shard', 'healcat.source.source_id'],
                            name='fk_release_change_source', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shard', 'source_id', 'release_id', name=op.f('pk_release_change')),
    schema='healcat'
    )
    op.create_index('ix_release_change_release_id_change', 'release_change', ['release_id', 'change'],
                    unique=False, schema='healcat')

    op.drop_constraint(op.f('ck_job_kind'), 'job', schema='healcat', type_='check')
    op.create_check_constraint(op.f('ck_job_kind'), 'job', "kind IN ('ingest', 'infer', 'index')", schema='healcat')
    op.add_column('job', sa.Column('parent_job_id', sa.BigInteger(), nullable=True,
                                   comment='the job whose success queued this one'), schema='healcat')
    op.add_column('job', sa.Column('progress_done', sa.BigInteger(), nullable=True,
                                   comment='rows (or steps) done so far'), schema='healcat')
    op.add_column('job', sa.Column('progress_total', sa.BigInteger(), nullable=True,
                                   comment='rows (or steps) in all, when known'), schema='healcat')
    op.create_foreign_key(op.f('fk_job_parent_job_id_job'), 'job', 'job', ['parent_job_id'], ['job_id'],
                          source_schema='healcat', referent_schema='healcat', ondelete='SET NULL')
    op.create_table('scheduled_ingest',
    sa.Column('checksum', sa.Text(), nullable=False, comment='release checksum (file and mapping)'),
    sa.Column('mapping', sa.Text(), nullable=False),
    sa.Column('file', sa.Text(), nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=True),
    sa.Column('scheduler', sa.Text(), nullable=False, comment='host:pid of the scheduler that found it'),
    sa.Column('found_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['healcat.job.job_id'], name=op.f('fk_scheduled_ingest_job_id_job'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('checksum', name=op.f('pk_scheduled_ingest')),
    schema='healcat'
    )
    run_sql_file("releases_v1.sql")


def downgrade() -> None:
    # Jobs of kind 'index' (new here) cannot stay under the old ck_job_kind: say so, and what to do,
    # before anything is dropped (the whole downgrade is one transaction: nothing changes).
    jobs = op.get_bind().execute(sa.text(
        "SELECT count(*), count(*) FILTER (WHERE status IN ('queued', 'running')) FROM healcat.job "
        "WHERE kind = 'index'")).one()
    if jobs[0]:
        raise RuntimeError(
            f"healcat downgrade below 0008: healcat.job holds {jobs[0]} job(s) of kind 'index' ({jobs[1]} queued "
            "or running), a kind that does not exist before 0008 (ck_job_kind: 'ingest', 'infer'); nothing was "
            "changed. Let the queued and running ones finish (or stop the workers), then delete them "
            "(DELETE FROM healcat.job WHERE kind = 'index'; what an index job built stays) and downgrade again")
    op.execute("""
        DROP VIEW healcat.failed_job, healcat.current_source_xid, healcat.current_spec_redshift,
            healcat.current_photometry, healcat.current_source, healcat.current_release;
        DROP FUNCTION healcat.source_fingerprint;
    """)
    op.drop_table('scheduled_ingest', schema='healcat')
    op.drop_constraint(op.f('fk_job_parent_job_id_job'), 'job', schema='healcat', type_='foreignkey')
    op.drop_column('job', 'progress_total', schema='healcat')
    op.drop_column('job', 'progress_done', schema='healcat')
    op.drop_column('job', 'parent_job_id', schema='healcat')
    op.drop_constraint(op.f('ck_job_kind'), 'job', schema='healcat', type_='check')
    op.create_check_constraint(op.f('ck_job_kind'), 'job', "kind IN ('ingest', 'infer')", schema='healcat')
    op.drop_index('ix_release_change_release_id_change', table_name='release_change', schema='healcat')
    op.drop_table('release_change', schema='healcat')
    op.drop_index('uq_release_published_survey', table_name='release', schema='healcat',
                  postgresql_where=sa.text("status = 'published'"))
    op.drop_constraint(op.f('fk_release_previous_release_id_release'), 'release', schema='healcat', type_='foreignkey')
    op.drop_column('release', 'previous_release_id', schema='healcat')
