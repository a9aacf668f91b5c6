"""Binary COPY into the catalog: the one way rows are bulk-written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
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


#: Fixed-width binary encodings of PostgreSQL types: numpy big-endian dtype of one value.
_SCALARS = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8"}
_FLOAT4_OID = 700


def _field(pgtype: str, values: np.ndarray) -> np.ndarray:
    """One column as ``[N, 4 + width]`` bytes: the field length, then the binary value."""
    n = len(values)
    if pgtype in _SCALARS:
        body = np.ascontiguousarray(values, dtype=_SCALARS[pgtype]).view(np.uint8).reshape(n, -1)
    elif pgtype == "float4[]":  # 1-D, no NULLs: ndim, has_null, elem oid, length, lower bound, then (len, value)s
        k = values.shape[1]
        head = np.broadcast_to(np.array([1, 0, _FLOAT4_OID, k, 1], dtype=">i4").view(np.uint8), (n, 20))
        items = np.empty((n, k), dtype=[("len", ">i4"), ("v", ">f4")])
        items["len"], items["v"] = 4, values
        body = np.hstack([head, items.view(np.uint8).reshape(n, -1)])
    elif pgtype == "vector":  # pgvector: dim (int16), unused (int16), float4s
        d = values.shape[1]
        head = np.broadcast_to(np.array([d, 0], dtype=">i2").view(np.uint8), (n, 4))
        body = np.hstack([head, np.ascontiguousarray(values, dtype=">f4").view(np.uint8).reshape(n, -1)])
    else:
        raise ValueError(f"copy_columns: no fixed-width encoding for {pgtype!r}")
    length = np.broadcast_to(np.array([body.shape[1]], dtype=">i4").view(np.uint8), (n, 4))
    return np.hstack([length, body])


def copy_columns(conn: psycopg.Connection, table: str, columns: Sequence[tuple[str, str, np.ndarray]]) -> int:
    """COPY whole numpy columns ``(name, PostgreSQL type, values [N] or [N, K])`` into ``healcat.table``.

    Every value is fixed-width (int2/4/8, float4/8, float4[] of one length, pgvector), so the binary
    COPY stream is built by numpy in one piece, with no per-row Python: the write path of inference.
    """
    n = len(columns[0][2])
    stmt = sql.SQL("COPY healcat.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c[0]) for c in columns)
    )
    count = np.broadcast_to(np.array([len(columns)], dtype=">i2").view(np.uint8), (n, 2))
    tuples = np.hstack([count, *(_field(t, np.asarray(v)) for _, t, v in columns)])
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + tuples.tobytes() + b"\xff\xff")
    return n
