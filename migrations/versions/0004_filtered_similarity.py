"""filtered similarity search: candidates, release, exact / approximate plans (sql/similarity_v1.sql)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 04:10:00

similar_sources, similar_to_vector and nearest_embeddings gain arguments, so the 0001 versions are
dropped (a second overload with defaults would make every existing call ambiguous) and created
anew; the downgrade restores the 0001 definitions verbatim from sql/queries_v1.sql.
"""

import re
from pathlib import Path

from alembic import op

SQL = Path(__file__).parent / "sql"

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

V1_FUNCTIONS = ("nearest_embeddings", "similar_to_vector", "similar_sources")
V1_SIGNATURES = ("healcat.similar_sources(bigint, text, integer, text)",
                 "healcat.similar_to_vector(vector, text, integer, text)",
                 "healcat.nearest_embeddings(vector, integer, integer, integer)")
NEW_FUNCTIONS = ("healcat.similar_plan", "healcat.similar_sources", "healcat.similar_to_vector",
                 "healcat.similar_core", "healcat.nearest_embeddings", "healcat.plan_similar", "healcat.similar_args")

# The PL/pgSQL functions resolve names (vector, <=>, healcat's own) the same way whatever the
# caller's search_path (as in 0001).
PIN_SEARCH_PATH = """
DO $$
DECLARE
    f regprocedure;
    vector_schema text := (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector');
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
             WHERE p.pronamespace = 'healcat'::regnamespace AND l.lanname = 'plpgsql' LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, healcat, %s', f, vector_schema);
    END LOOP;
END $$;
"""


def upgrade() -> None:
    op.execute(f"DROP FUNCTION {', '.join(V1_SIGNATURES)}")
    op.execute((SQL / "similarity_v1.sql").read_text())
    op.execute(PIN_SEARCH_PATH)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {', '.join(NEW_FUNCTIONS)}")
    queries_v1 = (SQL / "queries_v1.sql").read_text()
    for name in V1_FUNCTIONS:
        op.execute(re.search(rf"CREATE FUNCTION healcat\.{name}\(.*?END \$\$;", queries_v1, re.DOTALL).group(0))
    op.execute(PIN_SEARCH_PATH)
