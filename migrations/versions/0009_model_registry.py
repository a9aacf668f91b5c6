"""model registry: training parameters, classification outputs, skipped sources, current runs, PDF functions

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 04:20:00

- model.training_params: the parameters the stored training query ran with.
- prediction.label / prediction.probabilities: a classifier's answer (class, probability per class).
- inference_skip: the sources a run gave no output for, with the reason.
- uq_inference_run_done: at most one finished run per (model version, release).
- sql/ml_v1.sql: the current_run view, current_prediction over it (a new version becomes current
  on a release only once its run there has finished), and the mixture PDF / CDF / quantile /
  credible-interval functions with their photo-z shorthands.
"""


import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from migrations.functions import run_sql_file

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# 0001's definition, restored on downgrade.
_CURRENT_PREDICTION_V0 = """
CREATE VIEW healcat.current_prediction AS
SELECT m.name AS model_name, m.version AS model_version, m.task,
       p.shard, p.source_id, p.model_id, p.run_id, p.value, p.uncertainty,
       p.pdf_weights, p.pdf_means, p.pdf_sigmas, p.created_at
FROM healcat.prediction AS p
JOIN healcat.current_model AS m USING (model_id)
"""


def upgrade() -> None:
    op.add_column('model', sa.Column('training_params', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
                                     nullable=False, comment='the parameters the training query ran with, e.g. release_id'),
                  schema='healcat')
    op.add_column('prediction', sa.Column('label', sa.Text(), nullable=True,
                                          comment='classification: the most probable class'), schema='healcat')
    op.add_column('prediction', sa.Column('probabilities', postgresql.JSONB(astext_type=sa.Text()), nullable=True,
                                          comment='classification: probability per class, e.g. {"GALAXY": 0.97, "QSO": 0.01, "STAR": 0.02}'),
                  schema='healcat')
    op.create_index('uq_inference_run_done', 'inference_run', ['model_id', 'release_id'], unique=True,
                    schema='healcat', postgresql_where=sa.text('finished_at IS NOT NULL'))
    op.create_table('inference_skip',
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['healcat.inference_run.run_id'], name=op.f('fk_inference_skip_run_id_inference_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shard', 'source_id'], ['healcat.source.shard', 'healcat.source.source_id'], name='fk_inference_skip_source', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shard', 'source_id', 'run_id', name=op.f('pk_inference_skip')),
    schema='healcat'
    )
    op.create_index('ix_inference_skip_run_id', 'inference_skip', ['run_id'], unique=False, schema='healcat')
    run_sql_file("ml_v1.sql")


def downgrade() -> None:
    op.execute(
        """
        DROP FUNCTION healcat.photoz_interval, healcat.photoz_pdf, healcat.photoz_prediction,
            healcat.mixture_interval, healcat.mixture_quantile, healcat.mixture_cdf, healcat.mixture_pdf;
        DROP VIEW healcat.current_prediction;
        DROP VIEW healcat.current_run;
        """
    )
    op.execute(_CURRENT_PREDICTION_V0)
    op.drop_index('ix_inference_skip_run_id', table_name='inference_skip', schema='healcat')
    op.drop_table('inference_skip', schema='healcat')
    op.drop_index('uq_inference_run_done', table_name='inference_run', schema='healcat',
                  postgresql_where=sa.text('finished_at IS NOT NULL'))
    op.drop_column('prediction', 'probabilities', schema='healcat')
    op.drop_column('prediction', 'label', schema='healcat')
    op.drop_column('model', 'training_params', schema='healcat')
