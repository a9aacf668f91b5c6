"""similarity v9 (sql/similarity_v9.sql): a search of a release named without the version's outputs is an error

Revision ID: 0061
Revises: 0060
Create Date: 2026-12-07 17:30:00

similar_scope (same signature): with a release named (release_name) that holds no finished run of
the version the search resolves to, it raises invalid_parameter_value naming the release, the
version, the releases where the version has run and what runs it there, where similarity_v6's
answered no rows, as if nothing in the release were similar (a backfill pending, or a model whose
task has no inputs there, photo-z in Gaia, looked alike). A release where the version ran and gave
no embeddings is answered as before: no rows. The downgrade restores similarity_v6.sql's definition.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0061'
down_revision = '0060'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("similarity_v9.sql")


def downgrade() -> None:
    restore_functions("similarity_v6.sql", ["similar_scope"])
