"""similarity v5 (sql/similarity_v5.sql): rows nearest first in approx mode too; one model version
per search, the one current where it searches; published releases by default; a source's own
object left out in every release; any query vector length

Revision ID: 0030
Revises: 0031
Create Date: 2026-12-05 10:30:00

- Approx mode: the HNSW scan's rows (relaxed_order) are materialized and sorted on distance + 0, and
  similar_core orders by (distance, source_id): the planner took the index scan's ORDER BY as the
  rows' order and re-sorted only within batches of ~32 (an Incremental Sort), so a search whose
  iterative scan ran past its first batch could return rows out of distance order.
- With no version named, the version current (current_run) on the releases searched; releases where
  different versions are current are an error naming them (it used the query source's version and
  found nothing in a release where another version was current, without a word).
- With no release named, the published releases (a superseded release's copies of the same objects
  came back, the query's own object at distance 0); similar_sources leaves out the query's own object
  in every release (same object_id in its survey, or matched by release_change).
- similar_to_vector scales a query vector whose norm is below 1e-12 or above 1e12 to unit length
  (pgvector's float4 norm underflowed below ~1e-19: every distance was 0).

similar_scope replaces similar_args; plan_similar, nearest_embeddings and similar_core take arrays of
release ids (and of sources to exclude); the old definitions are dropped. The downgrade drops the new
ones and restores what they replaced (similarity_v1/v3/v4.sql).
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0030'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("similarity_v5.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION healcat.similar_core(vector, integer, integer, integer, bigint[], integer[], bigint[], "
               "text, integer, integer)")
    op.execute("DROP FUNCTION healcat.nearest_embeddings(vector, integer, integer, integer, bigint[], integer[], "
               "bigint[], text, integer, integer)")
    op.execute("DROP FUNCTION healcat.plan_similar(integer, integer, bigint[], integer[], text, integer, integer)")
    op.execute("DROP FUNCTION healcat.similar_scope(text, text, integer, text, text, integer, integer, bigint)")
    restore_functions("similarity_v4.sql", ["similar_args", "plan_similar", "similar_sources"])
    restore_functions("similarity_v3.sql", ["nearest_embeddings"])
    restore_functions("similarity_v1.sql", ["similar_core", "similar_to_vector", "similar_plan"])
