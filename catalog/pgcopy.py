"""Binary COPY of numpy columns, built with numpy (no Python loop per row): 10 million rows in seconds.

Only fixed-width values: int2/int4/int8/float4/float8 arrays, byte strings of one length (numpy
``S<n>``, sent as text) and raw binary values of one length (numpy ``V<n>``, e.g. pgvector's
binary form). No NULLs. The benchmark datasets and cross-match uploads (catalog/crossmatch.py)
are written this way.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import psycopg
from psycopg import sql

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
CHUNK_ROWS = 1_000_000


def _field_dtype(values: np.ndarray) -> str:
    if values.dtype.kind in "SV":
        return f"{values.dtype.kind}{values.dtype.itemsize}"
    if values.dtype.kind not in "if":
        raise TypeError(f"binary COPY: unsupported column dtype {values.dtype}")
    return ">" + values.dtype.str[1:]


def copy_columns(conn: psycopg.Connection, table: str, columns: Sequence[str], values: Sequence[np.ndarray]) -> int:
    """COPY equal-length numpy columns into ``table`` (schema-qualified, e.g. ``healcat.source``)."""
    n = len(values[0])
    if any(len(v) != n for v in values):
        raise ValueError("binary COPY: columns differ in length")
    fields = [("n", ">i2")]
    for i, v in enumerate(values):
        fields += [(f"len{i}", ">i4"), (f"val{i}", _field_dtype(v))]
    row = np.dtype(fields)
    schema, name = table.split(".")
    stmt = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(HEADER)
        for first in range(0, n, CHUNK_ROWS):
            last = min(n, first + CHUNK_ROWS)
            buf = np.empty(last - first, dtype=row)
            buf["n"] = len(values)
            for i, v in enumerate(values):
                buf[f"len{i}"] = v.dtype.itemsize
                buf[f"val{i}"] = v[first:last]
            copy.write(buf.tobytes())
        copy.write(TRAILER)
    return n
