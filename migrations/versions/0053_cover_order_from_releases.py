"""region covers size the catalog by its releases' counts too, not only the table's statistics
(sql/cone_v6.sql)

Revision ID: 0053
Revises: 0052
Create Date: 2026-12-06 16:50:00

healcat.cover_stop_order() (the order where every region's cover stops refining) read the size of
healcat.source from pg_class alone. On Citus the coordinator holds an empty shell of the table, so
its statistics say 0 rows and every cover was order 0: one range over every shard, nothing for the
distributed planner to prune. It now takes the larger of those statistics and the source rows the
releases loaded (release.row_counts). The downgrade restores cone_v4.sql's, and its comment.
"""

from migrations.functions import restore_comment, restore_functions, run_sql_file

revision = '0053'
down_revision = '0052'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("cone_v6.sql")


def downgrade() -> None:
    restore_functions("cone_v4.sql", ["cover_stop_order"])
    restore_comment("cone_v4.sql", "cover_stop_order()")
