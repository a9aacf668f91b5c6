"""Numpy columns to and from PostgreSQL with no Python loop per row: 10 million rows in seconds.

Writing (binary COPY FROM) has one encoder, :func:`encode_rows`, and two ways in.
:func:`copy_typed` takes each column's PostgreSQL type with its values (NULLs: NaN floats,
masked integers, None in object arrays; text and jsonb of any length; float4[] and pgvector rows;
one text for every row): the catalog's loads and inference write through it (ingest/copy.py).
:func:`copy_columns` takes bare numpy columns and reads their types from their dtypes: the
benchmark datasets and the cross-match's upload (catalog/crossmatch.py) go this way.
Reading (:func:`fetch_columns`): numbers and text, each column aggregated into one value by the
server, no NULLs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import psycopg
from psycopg import sql

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
FIXED = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8", "bool": "?"}
#: The type of a bare numpy column (:func:`copy_columns`), by dtype kind and size.
_TYPE_OF_DTYPE = {("i", 2): "int2", ("i", 4): "int4", ("i", 8): "int8", ("f", 4): "float4", ("f", 8): "float8"}
BATCH_ROWS = 50_000  # rows encoded at a time (bounds the scatter index arrays)
_FLOAT4_OID = 700

#: One column to write: (name, PostgreSQL type, values). Floats: NaN is NULL; integers may come as a
#: masked array; text and jsonb (already JSON text): an object array of str with None as NULL, a
#: numpy str array, a bytes array of UTF-8 (no NULL), or one str for every row (encoded once);
#: ``raw``: numpy ``V<n>`` values already in the column type's binary form (no NULL).
ColumnData = tuple[str, str, np.ndarray | str]


def copy_columns(conn: psycopg.Connection, table: str, columns: Sequence[str], values: Sequence[np.ndarray]) -> int:
    """COPY equal-length numpy columns into ``table`` (schema-qualified, e.g. ``healcat.source``), their
    PostgreSQL types read from their dtypes: int16/int32/int64 and float32/float64 arrays (a NaN is
    NULL), byte strings (numpy ``S<n>``, sent as text) and raw binary values of one length (numpy
    ``V<n>``, e.g. pgvector's binary form). Returns the row count."""
    n = len(values[0])
    if any(len(v) != n for v in values):
        lengths = ", ".join(str(len(v)) for v in values)
        raise ValueError(f"binary COPY into {table}: columns differ in length ({lengths} rows)")
    return copy_typed(conn, table, [(name, _type_of(table, name, v), v) for name, v in zip(columns, values)])


def _type_of(table: str, name: str, values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind in "SV":
        return {"S": "text", "V": "raw"}[kind]
    if (kind, values.dtype.itemsize) not in _TYPE_OF_DTYPE:
        raise TypeError(f"binary COPY into {table}: column {name} has dtype {values.dtype}, which has no encoder "
                        "(int16/32/64, float32/64, S<n>, V<n>)")
    return _TYPE_OF_DTYPE[kind, values.dtype.itemsize]


def copy_typed(conn: psycopg.Connection, table: str, columns: Sequence[ColumnData]) -> int:
    """COPY the rows these (name, PostgreSQL type, values) columns make into ``table``
    (schema-qualified); returns the row count."""
    n = len(columns[0][2]) if columns else 0
    if n == 0:
        return 0
    for name, pgtype, values in columns:
        _check_integers(table, name, pgtype, values)
    schema, name = table.split(".")
    stmt = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c[0]) for c in columns))
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(HEADER)
        for start in range(0, n, BATCH_ROWS):
            stop = min(start + BATCH_ROWS, n)
            copy.write(encode_rows(stop - start, [(t, v if isinstance(v, str) else v[start:stop])
                                                  for _, t, v in columns]))
        copy.write(TRAILER)
    return n


def _check_integers(table: str, name: str, pgtype: str, values) -> None:
    """Floats bound for an integer column must be whole and fit it (NaN is NULL): numpy's cast would
    truncate 2.7 to 2 and wrap 3e9 to -2147483648 without a word."""
    if pgtype not in ("int2", "int4", "int8") or isinstance(values, str) or values.dtype.kind != "f":
        return
    top = 2.0 ** (8 * np.dtype(FIXED[pgtype]).itemsize - 1)  # exact in float64, unlike the largest integer
    present = values[~np.isnan(values)]
    bad = present[(present != np.floor(present)) | (present < -top) | (present >= top)]
    if len(bad):
        raise ValueError(f"binary COPY: {table}.{name} ({pgtype}) cannot hold {float(bad[0])!r} exactly")


def encode_rows(n: int, columns: Sequence[tuple[str, np.ndarray | str]]) -> memoryview:
    """The binary COPY tuples (without header and trailer) of ``n`` rows of these (type, values) columns."""
    fixed = [_fixed_layout(pgtype, values, n) for pgtype, values in columns]
    if all(parts is not None for parts in fixed):
        return _rows_of_one_layout(n, len(columns), [part for parts in fixed for part in parts])
    pieces = [_constant(np.int16(len(columns)).byteswap().tobytes(), n)]
    for pgtype, values in columns:
        pieces += _text_constant(pgtype, values, n) if isinstance(values, str) else _field(pgtype, values)
    sizes = np.sum([p[0] for p in pieces], axis=0)
    row_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    out = np.empty(int(sizes.sum()), np.uint8)
    offset = row_start.copy()
    for piece_sizes, flat in pieces:
        if len(flat):
            src_start = np.concatenate(([0], np.cumsum(piece_sizes)[:-1]))
            out[np.repeat(offset - src_start, piece_sizes) + np.arange(len(flat))] = flat
        offset += piece_sizes
    return out.data


def _rows_of_one_layout(n: int, n_columns: int, parts: list[np.ndarray]) -> memoryview:
    """Rows that all have the same byte layout: an ``n x width`` matrix filled column block by block."""
    parts = [np.broadcast_to(np.array([n_columns], ">i2").view(np.uint8), (n, 2)), *parts]
    out = np.empty((n, sum(p.shape[1] for p in parts)), np.uint8)
    at = 0
    for part in parts:
        out[:, at:at + part.shape[1]] = part
        at += part.shape[1]
    return out.data


_NULL = np.array([-1], ">i4").view(np.uint8)


def _fixed_layout(pgtype: str, values: np.ndarray | str, n: int) -> list[np.ndarray] | None:
    """A column whose every row takes the same bytes (no NULL or all NULL, text of one length) as
    ``n x width`` uint8 matrices (length field, then value); None for a column of varying layout,
    which :func:`_field` encodes."""
    def length(width: int) -> np.ndarray:
        return np.broadcast_to(np.array([width], ">i4").view(np.uint8), (n, 4))

    if isinstance(values, str):
        payload = np.frombuffer((b"\x01" if pgtype == "jsonb" else b"") + values.encode(), np.uint8)
        return [length(len(payload)), np.broadcast_to(payload, (n, len(payload)))]
    if pgtype in FIXED and not np.ma.isMaskedArray(values) and values.dtype.kind in "iufb":
        null = np.isnan(values) if values.dtype.kind == "f" else None
        if null is not None and null.any():
            return [np.broadcast_to(_NULL, (n, 4))] if null.all() else None
        data = np.ascontiguousarray(values, dtype=FIXED[pgtype])
        return [length(data.itemsize), data.view(np.uint8).reshape(n, data.itemsize)]
    if pgtype in ("float4[]", "vector"):  # one length per column, no NULLs (model outputs)
        body = _array_body(pgtype, np.asarray(values))
        return [length(body.shape[1]), body]
    if pgtype == "raw":  # numpy V<n>: each value's binary form, as given
        return [length(values.itemsize), np.ascontiguousarray(values).view(np.uint8).reshape(n, values.itemsize)]
    if pgtype == "text" and values.dtype.kind == "S" and n:  # UTF-8 bytes, e.g. band names encoded once
        width = len(values[0])
        if not (np.strings.str_len(values) == width).all():
            return None
        return [length(width), values.view(np.uint8).reshape(n, values.itemsize)[:, :width]]
    return None


def _field(pgtype: str, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """A column as two pieces (per-row sizes, flat bytes): the 4-byte lengths (-1 for NULL), the values."""
    n = len(values)
    if pgtype in FIXED:
        if np.ma.isMaskedArray(values):
            null = np.ma.getmaskarray(values)
            values = np.ma.getdata(values)
        elif values.dtype.kind == "f":
            null = np.isnan(values)
        elif values.dtype.kind == "O":
            null = np.array([v is None for v in values], dtype=bool)
            values = np.where(null, 0, values)
        else:
            null = np.zeros(n, dtype=bool)
        width = np.dtype(FIXED[pgtype]).itemsize
        data = np.asarray(values)[~null].astype(FIXED[pgtype])
        lengths = np.where(null, -1, width).astype(">i4")
        return [(np.full(n, 4), lengths.view(np.uint8)),
                (np.where(null, 0, width), data.view(np.uint8).ravel())]
    if pgtype in ("float4[]", "vector", "raw"):  # beside a column of varying layout
        width, body = _fixed_layout(pgtype, values, n)
        return [(np.full(n, 4), width.ravel()), (np.full(n, body.shape[1]), body.ravel())]
    if pgtype not in ("text", "jsonb"):
        raise ValueError(f"binary COPY: no encoder for PostgreSQL type {pgtype!r}")
    prefix = b"\x01" if pgtype == "jsonb" else b""  # jsonb's binary format: version 1, then the text
    if values.dtype.kind in "US":  # fixed-width strings (band names, JSON made by numpy): no loop
        encoded = np.char.encode(values, "utf-8") if values.dtype.kind == "U" else values
        lengths = np.char.str_len(encoded).astype(np.int64)
        width = encoded.dtype.itemsize
        payload = encoded.view(np.uint8).reshape(n, width)[np.arange(width) < lengths[:, None]]
        version = [_constant(prefix, n)] if prefix else []
        return [(np.full(n, 4), (lengths + len(prefix)).astype(">i4").view(np.uint8)), *version, (lengths, payload)]
    encoded = [None if v is None else prefix + str(v).encode() for v in values]
    lengths = np.fromiter((-1 if e is None else len(e) for e in encoded), dtype=np.int64, count=n)
    payload = np.frombuffer(b"".join(e for e in encoded if e is not None), np.uint8)
    return [(np.full(n, 4), lengths.astype(">i4").view(np.uint8)), (np.maximum(lengths, 0), payload)]


def _array_body(pgtype: str, values: np.ndarray) -> np.ndarray:
    """``[N, width]`` bytes of a float4[] (1-D, one length) or pgvector column, without field lengths."""
    n = len(values)
    if pgtype == "float4[]":  # ndim, has_null, elem oid, length, lower bound, then (len, value)s
        k = values.shape[1]
        head = np.broadcast_to(np.array([1, 0, _FLOAT4_OID, k, 1], dtype=">i4").view(np.uint8), (n, 20))
        items = np.empty((n, k), dtype=[("len", ">i4"), ("v", ">f4")])
        items["len"], items["v"] = 4, values
        return np.hstack([head, items.view(np.uint8).reshape(n, -1)])
    d = values.shape[1]  # pgvector: dim (int16), unused (int16), float4s
    head = np.broadcast_to(np.array([d, 0], dtype=">i2").view(np.uint8), (n, 4))
    return np.hstack([head, np.ascontiguousarray(values, dtype=">f4").view(np.uint8).reshape(n, -1)])


def _constant(payload: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, len(payload)), np.tile(np.frombuffer(payload, np.uint8), n)


def _text_constant(pgtype: str, value: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The same text in every row: encoded once, repeated by numpy."""
    payload = (b"\x01" if pgtype == "jsonb" else b"") + value.encode()
    return [_constant(np.int32(len(payload)).byteswap().tobytes(), n), _constant(payload, n)]


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
