"""similarity search v2: the default ef_search chosen from recall on the 1M benchmark (sql/similarity_v2.sql)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 07:00:00

sql/similarity_v2.sql replaces plan_similar of sql/similarity_v1.sql (same signature, CREATE OR
REPLACE); the downgrade restores the v1 definition verbatim.
"""

import re
from pathlib import Path

from alembic import op

from migrations.functions import pin_search_path, run_sql_file

SQL = Path(__file__).parent / "sql"

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

REPLACED = ("plan_similar",)


def upgrade() -> None:
    run_sql_file("similarity_v2.sql")


def downgrade() -> None:
    v1 = (SQL / "similarity_v1.sql").read_text()
    for name in REPLACED:
        definition = re.search(rf"CREATE FUNCTION healcat\.{name}\(.*?END \$\$;", v1, re.DOTALL).group(0)
        op.execute(definition.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    pin_search_path()
