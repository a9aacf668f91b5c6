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

from migrations.functions import SQL, restore_functions, run_sql_file

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
    op.add_column("inference_run", sa.Column(
        "inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
        comment='the model versions its input query read, by task, e.g. {"object_class": model_id}; '
                'NULL: not recorded (runs before migration 0036)'), schema="healcat")
    run_sql_file("registry_v1.sql")


def downgrade() -> None:
    restore_functions("queries_v2.sql", ["resolve_model"])
    op.execute(_view_before("current_run", "ml_v1.sql"))
    op.execute("DROP VIEW healcat.current_model")  # a column fewer: no CREATE OR REPLACE
    op.execute(_view_before("current_model", "queries_v1.sql"))
    op.drop_column("inference_run", "inputs", schema="healcat")
    op.drop_column("model", "promoted_at", schema="healcat")
