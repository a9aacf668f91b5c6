"""Binary COPY into the catalog's tables (schema ``healcat``): how loads and inference bulk-write rows.

Columns go through the one binary-COPY encoder, :mod:`catalog.pgcopy` (numpy, no Python loop
per value except to encode text of varying length): writing a chunk costs about what the
server needs to store it. Values it has no numpy form for (arrays of varying length: light
curves, spectra) go row by row through psycopg (:func:`copy_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

from catalog import pgcopy


def copy_columns(conn: psycopg.Connection, table: str, columns: Sequence[pgcopy.ColumnData]) -> int:
    """COPY the rows these (name, PostgreSQL type, values) columns make into ``healcat.table``
    (:data:`catalog.pgcopy.ColumnData`); returns the row count."""
    return pgcopy.copy_typed(conn, f"healcat.{table}", columns)


def copy_rows(
    conn: psycopg.Connection, table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence]
) -> int:
    """COPY rows (tuples in ``columns`` order, of the PostgreSQL ``types``) into ``healcat.table``, row by
    row through psycopg: for values :func:`copy_columns` has no numpy form for (arrays of varying
    length: a light curve's epochs, a spectrum's pixels)."""
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


class ParentChecksOff:
    """Per-row foreign-key checks off while COPYing rows whose parents cannot vanish before commit.

    The caller guarantees it: the parents were inserted by this very transaction (no other one can
    see, hence delete, them: a load's new sources and their photometry), or it holds what keeps
    them (an inference run holds its release FOR KEY SHARE, and deleting one of the release's sources
    waits for that: :func:`ingest.inference.hold_release`). The check, a query and a
    row lock on the parent per row and foreign key, is then most of a COPY's cost and can only
    pass. Where the role may set ``session_replication_role`` (superuser, or granted SET on it: the
    embedded server's role) the COPYs run with it at ``replica``, which skips the check triggers;
    ``SET LOCAL`` ends with the transaction, committed or rolled back. Other roles keep the checks.
    """

    def __init__(self, conn: psycopg.Connection):
        with conn.cursor() as cur:
            cur.execute("SELECT has_parameter_privilege('session_replication_role', 'SET'), "
                        "current_setting('session_replication_role')")
            self.allowed, self.outside = cur.fetchone()
        self.conn = conn

    def __enter__(self):
        if self.allowed:
            self.conn.execute("SET LOCAL session_replication_role = replica")
        return self

    def __exit__(self, exc_type, *_):
        # After an error the transaction is aborted and rolls back, and the SET LOCAL with it.
        if self.allowed and exc_type is None:
            self.conn.execute("SELECT set_config('session_replication_role', %s, true)", (self.outside,))
