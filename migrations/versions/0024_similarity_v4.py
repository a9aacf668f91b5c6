"""similarity v4 (sql/similarity_v4.sql): a model without embeddings is a clear error; the
candidate sample spans the whole array

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 04:20:00

Replaces similar_args, similar_sources and plan_similar (same signatures); the downgrade restores
the definitions they replaced (similarity_v1.sql, queries_v2.sql, similarity_v2.sql).
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("similarity_v4.sql")


def downgrade() -> None:
    restore_functions("similarity_v1.sql", ["similar_args"])
    restore_functions("queries_v2.sql", ["similar_sources"])
    restore_functions("similarity_v2.sql", ["plan_similar"])
