"""similarity search v3: the embeddings of unfinished inference runs are not searched (sql/similarity_v3.sql)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 18:40:00

A run is now written in lanes, each committed before the run is marked finished (and a run that
died half way stays unfinished until the next run deletes what it wrote). sql/similarity_v3.sql
replaces healcat.nearest_embeddings (same signature) so that a search, like current_prediction,
sees finished runs only. The downgrade restores similarity_v1.sql's definition verbatim.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("similarity_v3.sql")


def downgrade() -> None:
    restore_functions("similarity_v1.sql", ["nearest_embeddings"])
