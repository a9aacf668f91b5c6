"""posterior percentiles on predictions, and cluster ages from every inference run

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 09:00:00

- prediction.value_p16 / value_p84: the 16th and 84th percentiles of a model's posterior, in the
  task's unit, where the model gives them (gyrochronology: a star's age posterior is skewed, and its
  symmetric half-width held Praesepe's age for 41% of its rotators, not 68%). current_prediction
  shows them, appended after its columns.
- cluster_age: each cluster's age from all its members in a release, as a run of an age model
  computed it (the product of the members' likelihoods): median and 16th/84th percentiles of
  log10(age / yr), with the members counted. Rows go with their run (a rerun, a deleted run). A
  small table keyed by run and cluster (clusters are a reference table; so is this one when the
  catalog is distributed). current_cluster_age: the rows of each model's current runs, with the
  cluster's and release's names and the literature age beside the model's.
"""

import sqlalchemy as sa
from alembic import op

from migrations.functions import RERUN, warn_dropping

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

CURRENT_PREDICTION = """
CREATE OR REPLACE VIEW healcat.current_prediction AS
SELECT c.model_name, c.model_version, c.task,
       p.shard, p.source_id, p.model_id, p.run_id, p.value, p.uncertainty,
       p.pdf_weights, p.pdf_means, p.pdf_sigmas, p.created_at, p.label, p.probabilities{extra}
FROM healcat.prediction AS p
JOIN healcat.current_run AS c ON c.model_id = p.model_id AND c.run_id = p.run_id"""

CURRENT_CLUSTER_AGE = """
CREATE VIEW healcat.current_cluster_age AS
SELECT c.model_name, c.model_version, rel.name AS release, cl.name AS cluster, a.cluster_id, a.run_id,
       a.n_members, a.log_age_yr, a.log_age_p16_yr, a.log_age_p84_yr,
       power(10, a.log_age_yr) / 1e6 AS age_myr, cl.age_myr AS literature_age_myr
FROM healcat.cluster_age AS a
JOIN healcat.current_run AS c ON c.run_id = a.run_id
JOIN healcat.release AS rel ON rel.release_id = c.release_id
JOIN healcat.cluster AS cl ON cl.cluster_id = a.cluster_id"""


def upgrade() -> None:
    for name, q in (("value_p16", "16th"), ("value_p84", "84th")):
        op.add_column("prediction", sa.Column(name, sa.Double(), nullable=True,
                                              comment=f"{q} percentile of the posterior, same unit as value"),
                      schema="healcat")
    op.execute(CURRENT_PREDICTION.format(extra=", p.value_p16, p.value_p84"))
    op.create_table(
        "cluster_age",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("n_members", sa.Integer(), nullable=False, comment="the members whose likelihoods were multiplied"),
        sa.Column("log_age_yr", sa.Double(), nullable=False, comment="posterior median of log10(age / yr)"),
        sa.Column("log_age_p16_yr", sa.Double(), nullable=False, comment="16th percentile [log10 yr]"),
        sa.Column("log_age_p84_yr", sa.Double(), nullable=False, comment="84th percentile [log10 yr]"),
        sa.ForeignKeyConstraint(["run_id"], ["healcat.inference_run.run_id"],
                                name=op.f("fk_cluster_age_run_id_inference_run"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["cluster_id"], ["healcat.cluster.cluster_id"],
                                name=op.f("fk_cluster_age_cluster_id_cluster")),
        sa.PrimaryKeyConstraint("run_id", "cluster_id", name=op.f("pk_cluster_age")),
        schema="healcat",
        comment="a cluster's age from all its members in a release, by one inference run",
    )
    op.execute(CURRENT_CLUSTER_AGE)


def downgrade() -> None:
    warn_dropping('0028', 'prediction', ['value_p16', 'value_p84'], "the percentiles are NULL: " + RERUN)
    warn_dropping('0028', 'cluster_age', [], "the runs that computed them have none: " + RERUN)
    op.execute("DROP VIEW healcat.current_cluster_age")
    op.drop_table("cluster_age", schema="healcat")
    # A view's columns cannot be dropped in place: current_prediction goes and comes back.
    op.execute("DROP VIEW healcat.current_prediction")
    op.execute(CURRENT_PREDICTION.format(extra=""))
    for name in ("value_p84", "value_p16"):
        op.drop_column("prediction", name, schema="healcat")
