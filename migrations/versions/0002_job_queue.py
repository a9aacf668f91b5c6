"""job queue: healcat.job, claimed by workers with FOR UPDATE SKIP LOCKED (ingest/queue.py)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 02:33:49.257077
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job',
    sa.Column('job_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False, comment='what the job does, e.g. ingest:sdss_dr14_skyserver_10k'),
    sa.Column('args', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('status', sa.Text(), server_default='queued', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='5', nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker', sa.Text(), nullable=True, comment='host:pid of the worker that ran it last'),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('ingest', 'infer')", name=op.f('ck_job_kind')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_job_status')),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_job')),
    schema='healcat'
    )
    op.create_index('ix_job_due', 'job', ['run_after'], unique=False, schema='healcat', postgresql_where=sa.text("status = 'queued'"))
    op.create_index('uq_job_live_key', 'job', ['key'], unique=True, schema='healcat', postgresql_where=sa.text("status IN ('queued', 'running')"))


def downgrade() -> None:
    op.drop_index('uq_job_live_key', table_name='job', schema='healcat', postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.drop_index('ix_job_due', table_name='job', schema='healcat', postgresql_where=sa.text("status = 'queued'"))
    op.drop_table('job', schema='healcat')
