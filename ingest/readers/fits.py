"""FITS tables (astropy.io.fits): the HDU the mapping names, memory-mapped and read in row slices."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, RowCount, register


def count_fits(path: Path, options: ReadOptions) -> RowCount:
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
    truncated = [str(w.message) for w in caught if "truncated" in str(w.message)]
    if truncated:
        hdul.close()
        raise IngestError(f"{path}: truncated: {truncated[0]}")
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
            table = Table(data[first:first + options.chunk_rows], masked=False)
            table.convert_bytestring_to_unicode()
            for column in hdu.columns:  # TUNITn, so a mapping can be checked against the file's own units
                if column.unit:
                    table[column.name].unit = u.Unit(column.unit, format="fits", parse_strict="silent")
            for name in table.colnames:  # FITS pads text with blanks
                if table[name].dtype.kind == "U":
                    table[name] = np.char.rstrip(table[name])
            yield first + 1, table
