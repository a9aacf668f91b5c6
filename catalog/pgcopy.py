"""Numpy columns to and from PostgreSQL with no Python loop per row: 10 million rows in seconds.

Writing (:func:`copy_columns`, binary COPY FROM): fixed-width values only: int2/int4/int8/float4/float8
arrays, byte strings of one length (numpy ``S<n>``, sent as text) and raw binary values of one length
(numpy ``V<n>``, e.g. pgvector's binary form). Reading (:func:`fetch_columns`): numbers and text,
each column aggregated into one value by the server. No NULLs either way. The benchmark datasets and
the cross-match's upload and answer (catalog/crossmatch.py) go this way.
"""

from __future__ import annotations

import re
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


#: The send function giving a number's binary form (big-endian), by numpy dtype.
_SEND = {"int32": "int4send", "int64": "int8send", "float32": "float4send", "float64": "float8send"}


def fetch_columns(conn: psycopg.Connection, query: str, params: Sequence, columns: Sequence[tuple[str, str]]
                  ) -> list[np.ndarray]:
    """The ``columns`` (name, numpy dtype: a number type or ``"str"``) of ``query``'s rows (no NULLs) as
    numpy arrays, in one round trip and one row: each column aggregated by the server into one value,
    numbers as their binary forms concatenated, text joined by newlines (backslashes and newlines in
    it escaped). A million rows as Python tuples cost seconds to parse; and COPY TO would hand psycopg
    one message per row.
    """
    aggregates = [sql.SQL("count(*)")]
    for name, dtype in columns:
        column = sql.SQL("q.{}").format(sql.Identifier(name))
        aggregates.append(
            sql.SQL("string_agg(replace(replace({}, '\\', '\\\\'), E'\\n', '\\n'), E'\\n')").format(column)
            if dtype == "str" else sql.SQL("string_agg({}({}), ''::bytea)").format(sql.SQL(_SEND[dtype]), column))
    statement = sql.SQL("SELECT {} FROM ({}) AS q").format(sql.SQL(", ").join(aggregates), sql.SQL(query))
    with conn.cursor(binary=True) as cur:
        n, *values = cur.execute(statement, params).fetchone()
    arrays = []
    for (name, dtype), value in zip(columns, values):
        if dtype == "str":
            items = value.split("\n") if n else []
            if n and "\\" in value:
                items = [re.sub(r"\\([\\n])", lambda m: "\\" if m.group(1) == "\\" else "\n", x) for x in items]
            array = np.array(items, dtype=str)
        else:
            array = np.frombuffer(value or b"", dtype=">" + np.dtype(dtype).str[1:]).astype(dtype)
        if len(array) != n:
            raise ValueError(f"fetch_columns: column {name} has NULLs ({len(array)} values in {n} rows)")
        arrays.append(array)
    return arrays
