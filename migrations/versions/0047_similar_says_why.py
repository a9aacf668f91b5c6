"""a source with no embedding says why (sql/similarity_v8.sql)

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-06 00:30:00

healcat.similar_sources on a source the model gave no embedding (a star, for the photo-z model)
answered "name a version, or the release to search", which cannot help: it now gives the reason the
model's run on the source's release recorded (inference_skip), or says that the version has no
finished run there. The downgrade restores similarity_v7.sql's function.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0047'
down_revision = '0046'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("similarity_v8.sql")


def downgrade() -> None:
    restore_functions("similarity_v7.sql", ["similar_sources"])
