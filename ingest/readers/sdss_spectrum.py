"""Spectrum file layouts, one series reader each (see ``ingest/readers/series.py``).

- ``sdss_spec``: SDSS ``spec-PLATE-MJD-FIBER.fits`` (spec and spec-lite, SDSS-I/II and BOSS):
  HDU 1 ``COADD`` holds the pixels (``loglam`` [log10 Angstrom, vacuum], ``flux`` [1e-17
  erg/s/cm2/Angstrom], ``ivar``, ``and_mask``, ...), HDU 2 the object's row (``SPECOBJ`` in
  SDSS-I/II files, ``SPALL`` in BOSS ones: PLATE, MJD, FIBERID, PLUG_RA/DEC, Z, CLASS, ...).
- ``eso_phase3_spec``: an ESO Phase-3 1-D spectrum (e.g. LEGA-C): one binary-table row of
  arrays (WAVE, FLUX, ERR, QUAL); the scalars are the primary header's keywords.

A column's own unit (FITS TUNIT) goes with the record: where it differs from the mapping's, the
values are converted, or the spectrum refused where they cannot be (``perobject_build.spectrum_row``).

A file that astropy cannot read whole (truncated, not FITS, missing HDU) is an unreadable
record: quarantined by name, the other files load.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from ingest.cells import json_scalar
from ingest.readers.series import Record, register_series, unreadable


def _scalars(row: fits.FITS_rec, names: list[str]) -> dict[str, Any]:
    """A table row's scalar columns as Python values (array-valued columns are left out)."""
    out = {}
    for name in names:
        value = row[name]
        if np.ndim(value) == 0:
            out[name] = json_scalar(value.strip() if isinstance(value, str) else value)
    return out


def _units(columns: fits.ColDefs) -> dict[str, str]:
    """The TUNIT of each column that has one: the spectrum's checks compare it to the mapping's unit."""
    return {c.name: c.unit.strip() for c in columns if c.unit and c.unit.strip()}


def _read(path: Path, parse) -> Iterator[Record]:
    try:
        with warnings.catch_warnings():
            # astropy warns, not raises, on a truncated file (AstropyUserWarning) or a header it must fix
            # (VerifyWarning): those make the file unreadable. Only astropy's: a warning of anything else
            # raised meanwhile (a ResourceWarning from an object the garbage collector finalises now) is
            # no fault of this file.
            warnings.simplefilter("error", AstropyWarning)
            with fits.open(path, memmap=False) as hdul:
                hdul.verify("exception")
                record = parse(path, hdul)
    except Exception as exc:  # astropy raises many types for broken files
        yield unreadable(path, exc)
        return
    yield record


def _sdss(path: Path, hdul: fits.HDUList) -> Record:
    coadd = hdul["COADD"].data
    meta_hdu = hdul["SPECOBJ"] if "SPECOBJ" in hdul else hdul["SPALL"]
    meta = _scalars(meta_hdu.data[0], meta_hdu.columns.names)
    arrays = {name: np.asarray(coadd[name]) for name in coadd.columns.names}
    return Record(path, 0, None, meta=meta, arrays=arrays, units=_units(hdul["COADD"].columns))


def _eso_phase3(path: Path, hdul: fits.HDUList) -> Record:
    table = hdul[1].data
    if len(table) != 1:
        raise ValueError(f"{len(table)} rows in HDU 1; an ESO Phase-3 1-D spectrum has one")
    meta = {k: json_scalar(v) for k, v in hdul[0].header.items() if k not in ("COMMENT", "HISTORY", "")}
    arrays = {name: np.asarray(table[name][0]).astype(np.float64) for name in table.columns.names}
    return Record(path, 0, None, meta=meta, arrays=arrays, units=_units(table.columns))


@register_series("sdss_spec")
def read_sdss_spec(paths: list[Path], options: dict[str, Any]) -> Iterator[Record]:
    for path in paths:
        yield from _read(path, _sdss)


@register_series("eso_phase3_spec")
def read_eso_phase3_spec(paths: list[Path], options: dict[str, Any]) -> Iterator[Record]:
    for path in paths:
        yield from _read(path, _eso_phase3)
