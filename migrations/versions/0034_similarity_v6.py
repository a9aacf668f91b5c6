"""similarity v6 (sql/similarity_v6.sql): a search of the published releases without the version's outputs is an error

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05 10:00:00

similar_scope (same signature): with no release named, when the published releases hold no finished
run of the version the search resolves to and older releases do, it raises invalid_parameter_value
naming both, where similarity_v5's searched an empty list of releases and answered no rows (every
such search from a survey's new release being published until its backfill finished). A release
named without the version's outputs is answered as before: no rows. The downgrade restores
similarity_v5.sql's definition.
"""

from migrations.functions import restore_functions, run_sql_file

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("similarity_v6.sql")


def downgrade() -> None:
    restore_functions("similarity_v5.sql", ["similar_scope"])
