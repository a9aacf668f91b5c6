"""Binary COPY into the catalog: the one way rows are bulk-written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql


def copy_rows(
    conn: psycopg.Connection, table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence]
) -> int:
    """COPY rows (tuples in ``columns`` order, of the PostgreSQL ``types``) into ``healcat.table``."""
    stmt = sql.SQL("COPY healcat.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    n = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
            n += 1
    return n
