"""a cluster's age as each release gives it

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-05 10:10:00

- rotation_period.cluster_age_myr: the age the row's release gives its cluster. A later release (a
  revised catalogue) may give another: its rows were quarantined ('differs from the ... Myr stored')
  because healcat.cluster holds one age; now each row keeps its release's own, gyrochronology
  training reads it (else the cluster's), and only rows of one release disagreeing are quarantined.
  Rows loaded before keep NULL (their release's age is the cluster's, as it was read).
- cluster.age_myr is the first age a release gave (its comment says so).
- current_cluster_age: literature_age_myr is the age the run's release gives the cluster, else the
  cluster's.
"""

import sqlalchemy as sa
from alembic import op

from migrations.functions import REINGEST, log, warn_dropping

revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None

VIEW = """
CREATE OR REPLACE VIEW healcat.current_cluster_age AS
SELECT c.model_name, c.model_version, rel.name AS release, cl.name AS cluster, a.cluster_id, a.run_id,
       a.n_members, a.log_age_yr, a.log_age_p16_yr, a.log_age_p84_yr,
       power(10, a.log_age_yr) / 1e6 AS age_myr, {literature} AS literature_age_myr
FROM healcat.cluster_age AS a
JOIN healcat.current_run AS c ON c.run_id = a.run_id
JOIN healcat.release AS rel ON rel.release_id = c.release_id
JOIN healcat.cluster AS cl ON cl.cluster_id = a.cluster_id"""
OWN_AGE = ("coalesce((SELECT max(rp.cluster_age_myr) FROM healcat.rotation_period AS rp "
           "WHERE rp.release_id = c.release_id AND rp.cluster_id = a.cluster_id), cl.age_myr)")


def upgrade() -> None:
    op.add_column("rotation_period", sa.Column(
        "cluster_age_myr", sa.Double(), nullable=True,
        comment="the age this release gives the star's cluster [Myr] (another release may revise it)"),
        schema="healcat")
    op.alter_column("cluster", "age_myr", schema="healcat", existing_type=sa.Double(),
                    comment="the first age a release gave it [Myr]", existing_comment="[Myr]")
    op.execute(VIEW.format(literature=OWN_AGE))


def downgrade() -> None:
    # What 0036's downgrade kept of the model versions' promotions: an upgrade through 0036 from below
    # 0035 promotes every version as of its creation (as for a catalog that never had 0036).
    if op.get_bind().scalar(sa.text("SELECT to_regclass('healcat.model_promotion_0036')")) is not None:
        candidates = op.get_bind().scalar(sa.text(
            "SELECT count(*) FROM healcat.model_promotion_0036 WHERE promoted_at IS NULL"))
        log.warning("healcat downgrade below 0035 drops healcat.model_promotion_0036 (what 0036's downgrade kept of "
                    "the model versions' promotions): upgrading through 0036 again promotes every version as of its "
                    "creation, %d candidate(s) among them; retire (healcat model retire) what should not be current",
                    candidates)
        op.execute("DROP TABLE healcat.model_promotion_0036")
    warn_dropping('0035', 'rotation_period', ['cluster_age_myr'],
                  "migration 0049 gives the rows of a release that maps cluster_age_myr their cluster's "
                  "first age (healcat.cluster.age_myr), not an age their release revised: "
                  + REINGEST)
    op.execute(VIEW.format(literature="cl.age_myr"))
    op.alter_column("cluster", "age_myr", schema="healcat", existing_type=sa.Double(),
                    comment="[Myr]", existing_comment="the first age a release gave it [Myr]")
    op.drop_column("rotation_period", "cluster_age_myr", schema="healcat")
