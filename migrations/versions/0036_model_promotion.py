"""model promotion (sql/registry_v1.sql): a new version is current only once promoted; a run records its inputs' versions

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-05 12:30:00

- model.promoted_at: when the version became current (promoted). Registration promotes a version
  when its model has no current version or its task's primary held-out metric is at least as good
  as the current version's; otherwise it is a candidate (NULL) until `healcat model promote`.
  Existing versions are promoted as of their creation, so a catalog's current versions stay as they
  were. A row inserted without saying is promoted (server default now()), as every version was.
- current_model, current_run, resolve_model: the newest promoted unretired version by promotion
  time (was: the newest unretired by created_at: every version registered became current).
- inference_run.inputs: the model versions a run's input query read, by task ({"object_class":
  model_id}: the classifier whose labels chose photo-z's galaxies; {} when it reads none). Runs
  before this migration have NULL: not recorded.
The downgrade restores queries_v1.sql's current_model, ml_v1.sql's current_run and queries_v2.sql's
resolve_model.
"""

import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.functions import SQL, log, restore_functions, run_sql_file, warn_dropping

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def _view_before(name: str, file: str) -> str:
    """The view's definition as ``versions/sql/FILE`` created it, as CREATE OR REPLACE."""
    text = (SQL / file).read_text()
    definition = re.search(rf"^CREATE VIEW healcat\.{name} AS\n.*?;", text, re.DOTALL | re.MULTILINE).group(0)
    return definition.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)


def upgrade() -> None:
    op.add_column("model", sa.Column(
        "promoted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True,
        comment="when it became current (promoted); NULL: a candidate, never promoted"), schema="healcat")
    op.execute("UPDATE healcat.model SET promoted_at = created_at")
    # Where this migration's downgrade ran before, it kept each version's promoted_at (NULL: a candidate)
    # in healcat.model_promotion_0036: put them back, so that the version current before the round trip
    # is current again (promoting every version as of its creation would make the newest candidate
    # current). Versions registered below 0036 since are not there: current as of their creation.
    if op.get_bind().scalar(sa.text("SELECT to_regclass('healcat.model_promotion_0036')")) is not None:
        op.execute("""UPDATE healcat.model AS m SET promoted_at = k.promoted_at
                      FROM healcat.model_promotion_0036 AS k
                      WHERE k.model_id = m.model_id AND k.created_at = m.created_at""")
        op.execute("DROP TABLE healcat.model_promotion_0036")
    op.add_column("inference_run", sa.Column(
        "inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
        comment='the model versions its input query read, by task, e.g. {"object_class": model_id}; '
                'NULL: not recorded (runs before migration 0036)'), schema="healcat")
    run_sql_file("registry_v1.sql")


def downgrade() -> None:
    conn = op.get_bind()
    # Below 0036 every unretired version is current by creation: say which model's current version
    # that changes (a candidate newer than the promoted one, an older version promoted again).
    for name, below, now in conn.execute(sa.text("""
            SELECT b.name, b.version, c.version FROM (
                SELECT DISTINCT ON (name) name, version, model_id FROM healcat.model WHERE retired_at IS NULL
                ORDER BY name, created_at DESC, model_id DESC) AS b
            LEFT JOIN healcat.current_model AS c USING (name)
            WHERE c.model_id IS DISTINCT FROM b.model_id ORDER BY 1""")):
        log.warning("healcat downgrade below 0036: model %s's current version becomes %s (below 0036 the newest "
                    "unretired version is current), was %s; upgrading through 0036 again restores the promotions "
                    "(kept in healcat.model_promotion_0036), and %s with them, unless a version is registered "
                    "meanwhile", name, below, now or "none (none promoted)", now or "no current version")
    # Keep the promotions for an upgrade through 0036 again (dropped by 0035's downgrade, if run).
    conn.execute(sa.text("DROP TABLE IF EXISTS healcat.model_promotion_0036"))
    conn.execute(sa.text("""CREATE TABLE healcat.model_promotion_0036 AS
                            SELECT model_id, created_at, promoted_at FROM healcat.model"""))
    warn_dropping("0036", "inference_run", ["inputs"], "the runs keep NULL (not recorded), as runs before 0036")
    restore_functions("queries_v2.sql", ["resolve_model"])
    op.execute(_view_before("current_run", "ml_v1.sql"))
    op.execute("DROP VIEW healcat.current_model")  # a column fewer: no CREATE OR REPLACE
    op.execute(_view_before("current_model", "queries_v1.sql"))
    op.drop_column("inference_run", "inputs", schema="healcat")
    op.drop_column("model", "promoted_at", schema="healcat")
