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

from migrations.functions import pin_search_path, run_sql_file

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


def upgrade() -> None:
    op.execute(f"DROP FUNCTION {', '.join(V1_SIGNATURES)}")
    run_sql_file("similarity_v1.sql")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {', '.join(NEW_FUNCTIONS)}")
    queries_v1 = (SQL / "queries_v1.sql").read_text()
    for name in V1_FUNCTIONS:
        op.execute(re.search(rf"CREATE FUNCTION healcat\.{name}\(.*?END \$\$;", queries_v1, re.DOTALL).group(0))
    pin_search_path()
