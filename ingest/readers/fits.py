"""FITS tables (astropy.io.fits): the HDU the mapping names, memory-mapped and read in row slices."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, RowCount, register


def count_fits(path: Path, options: ReadOptions) -> RowCount:
    with warnings.catch_warnings():  # a broken file: its reader says what is wrong, once
        warnings.simplefilter("ignore")
        return RowCount(int(fits.getheader(path, options.hdu)["NAXIS2"]))


@register("fits", count=count_fits)
def read_fits(path: Path, options: ReadOptions) -> Chunks:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdul = fits.open(path, memmap=True)
            hdul.readall()  # every header now, so a short file is found before any row is read
    except (OSError, ValueError, IndexError) as exc:
        raise IngestError(f"{path}: not a FITS file: {exc}") from exc
    # A file cut inside a header: astropy warns (data cut short: 'truncated'; a header cut short: 'Header
    # size is not multiple of 2880') and keeps the HDUs before it.
    cut = [str(w.message) for w in caught if "truncated" in str(w.message) or "2880" in str(w.message)]
    if cut:
        hdul.close()
        raise IngestError(f"{path}: truncated: {' '.join(cut[0].split())}")
    with hdul:
        try:
            hdu = hdul[options.hdu]
        except (IndexError, KeyError):
            names = [f"{i}:{h.name}" for i, h in enumerate(hdul)]
            raise IngestError(f"{path}: no HDU {options.hdu!r} (the file has {', '.join(names)})") from None
        if not isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
            raise IngestError(f"{path}: HDU {options.hdu!r} is a {type(hdu).__name__}, not a table")
        header = hdu.header
        n_rows = header["NAXIS2"]
        size = header["NAXIS1"] * n_rows + header.get("PCOUNT", 0)
        start = hdul.fileinfo(hdul.index_of(options.hdu) if isinstance(options.hdu, str) else options.hdu)["datLoc"]
        if start + size > path.stat().st_size:
            raise IngestError(f"{path}: truncated: HDU {options.hdu!r} needs {size} data bytes from byte {start}, "
                              f"the file has {path.stat().st_size - start}")
        data = hdu.data
        for first in range(0, n_rows, options.chunk_rows):
            rows = data[first:first + options.chunk_rows]
            table = Table()
            for column in hdu.columns:
                table[column.name] = _cells(path, column, rows[column.name], first + 1)
                if column.unit:  # TUNITn, so a mapping can be checked against the file's own units
                    table[column.name].unit = u.Unit(column.unit, format="fits", parse_strict="silent")
            yield first + 1, table


def _cells(path: Path, column: fits.Column, values: np.ndarray, first_row: int) -> np.ndarray | MaskedColumn:
    """One column of a slice of rows: text decoded (FITS pads it with blanks; a byte that is not ASCII
    is an error naming its row), integers equal to the column's TNULLn masked (missing)."""
    if values.dtype.kind == "S":
        try:
            return np.char.rstrip(np.char.decode(values, "ascii"))
        except UnicodeDecodeError:
            flat = values.ravel()
            cell = next(i for i, v in enumerate(flat) if not v.isascii())
            raise IngestError(f"{path}: data row {first_row + cell // (flat.size // len(values))} column "
                              f"{column.name}: {flat[cell]!r} is not ASCII text, as FITS requires") from None
    if column.null is not None and values.dtype.kind in "iu":
        return MaskedColumn(values, mask=values == column.null)
    return values
