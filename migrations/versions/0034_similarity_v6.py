"""similarity v6 (sql/similarity_v6.sql): a search over releases without the version's outputs is an error

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05 10:00:00

similar_scope (same signature) raises invalid_parameter_value naming the releases searched and
those the version has run on, where similarity_v5's searched an empty list of releases and answered
no rows: every search with no release named, from a survey's new release being published until its
inference backfill finished. The downgrade restores similarity_v5.sql's definition.
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
