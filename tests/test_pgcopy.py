"""catalog/pgcopy.py: bare numpy columns go through the one binary-COPY encoder the loads use."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from catalog.pgcopy import copy_columns


def test_copy_columns_types_bare_numpy_columns_by_their_dtypes(conn):
    conn.execute(sa.text("CREATE TEMPORARY TABLE copy_probe (a int2, b int4, c int8, x float4, y float8, "
                         "w text, v vector(3))"))
    n = 5
    vecs = np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 4
    raw = np.empty(n, dtype=[("dim", ">i2"), ("unused", ">i2"), ("x", ">f4", (3,))])  # pgvector's binary form
    raw["dim"], raw["unused"], raw["x"] = 3, 0, vecs
    y = np.array([0.1, np.nan, 2.5, -1e300, 7.0])
    words = np.array([b"gaia_g", b"r", b"", b"sdss_u", b"Vega"])  # one S6 dtype, five lengths
    pg = conn.connection.driver_connection
    assert copy_columns(pg, "pg_temp.copy_probe", ("a", "b", "c", "x", "y", "w", "v"),
                        (np.arange(n, dtype=np.int16) - 2, np.arange(n, dtype=np.int32) * 1000,
                         np.arange(n, dtype=np.int64) * 2**40, np.linspace(0, 1, n, dtype=np.float32), y, words,
                         raw.view(f"V{raw.dtype.itemsize}").ravel())) == n
    stored = conn.execute(sa.text("SELECT a, b, c, x, y, w, v::text FROM copy_probe ORDER BY a")).all()
    assert [r.a for r in stored] == [-2, -1, 0, 1, 2] and [r.b for r in stored] == [0, 1000, 2000, 3000, 4000]
    assert [r.c for r in stored] == [i * 2**40 for i in range(n)]
    np.testing.assert_array_equal(np.array([r.x for r in stored], np.float32), np.linspace(0, 1, n, dtype=np.float32))
    assert [r.y for r in stored] == [0.1, None, 2.5, -1e300, 7.0], "a NaN is NULL"
    assert [r.w for r in stored] == ["gaia_g", "r", "", "sdss_u", "Vega"]
    assert [r.v for r in stored] == [f"[{','.join(f'{x:g}' for x in row)}]" for row in vecs]


def test_copy_columns_refuses_what_it_cannot_encode_naming_the_column(conn):
    pg = conn.connection.driver_connection
    with pytest.raises(TypeError, match="copy_probe: column u has dtype uint8, which has no encoder"):
        copy_columns(pg, "pg_temp.copy_probe", ("k", "u"), (np.arange(3), np.arange(3, dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"copy_probe: columns differ in length \(3, 2 rows\)"):
        copy_columns(pg, "pg_temp.copy_probe", ("k", "y"), (np.arange(3), np.zeros(2)))
