"""Per-object arrays in healcat's units, checked point by point: light-curve bands and spectra.

Pure functions over a series :class:`~ingest.readers.series.Record`: each returns the rows to
write and reports what it rejects through ``reject(file, row, column, reason, raw)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from ingest.cells import format_id
from ingest.perobject_mapping import Band, LightCurveSpec, SpectrumSpec
from ingest.readers.series import Record
from ingest.validate import FLOAT4_MAX, MAG_RANGE

Reject = Callable[[Any, int, str | None, str, dict], None]


def as_floats(values: np.ndarray) -> np.ndarray:
    """float64 of an array; text that is no number becomes NaN (then rejected as non-finite)."""
    if values.dtype.kind in "iufb":
        return values.astype(np.float64)
    out = np.full(len(values), np.nan)
    for i, text in enumerate(values):
        try:
            out[i] = float(text)
        except (TypeError, ValueError):
            pass
    return out


def _band_points(lc: LightCurveSpec, band: Band, record: Record) -> np.ndarray:
    """Indices of the record's points that belong to ``band``."""
    n = len(record.arrays[band.time])
    if band.select is None:
        return np.arange(n)
    return np.flatnonzero(record.arrays[lc.band_column].astype(str) == band.select)


def curve_rows(lc: LightCurveSpec, record: Record, reject: Reject, stats: dict[str, int]) -> Iterator[dict]:
    """The light_curve rows of one object, band by band, after point and curve checks."""
    if lc.band_column:
        if len(record.arrays[lc.band_column]) == 0:
            reject(record.file, record.row, None, "empty light curve: no points in the file", {"object": record.key})
            return
        known = {b.select for b in lc.bands.values()}
        for i in np.flatnonzero(~np.isin(record.arrays[lc.band_column].astype(str), list(known))):
            value = str(record.arrays[lc.band_column][i])
            reject(record.file, record.where(i), lc.band_column,
                   f"band {value!r} is not one the mapping names ({', '.join(sorted(known))})",
                   {"object": record.key, "index": int(i), "band": value})
    for band in lc.bands.values():
        idx = _band_points(lc, band, record)
        if band.select is not None and not len(idx):  # points of several bands, none of this one
            stats["bands_not_observed"] = stats.get("bands_not_observed", 0) + 1
            continue
        lengths = {len(record.arrays[c]) for c in (band.time, band.mag, band.mag_err)}
        raw = {"object": record.key, "band": band.name}
        if len(lengths) > 1:
            reject(record.file, record.row, band.mag, f"{band.name}: time, mag and error arrays differ in length "
                   f"({sorted(lengths)})", raw)
            continue
        t, m, e = (as_floats(record.arrays[c])[idx] for c in (band.time, band.mag, band.mag_err))
        sentinel = np.isin(m, lc.sentinels) if lc.sentinels else np.zeros(len(m), dtype=bool)
        stats["sentinel_points"] += int(sentinel.sum())
        ok = ~sentinel
        with np.errstate(invalid="ignore"):
            checks = ((band.time, ~np.isfinite(t), "time {} is not finite"),
                      (band.mag, ~np.isfinite(m), "mag {} is not finite"),
                      (band.mag_err, ~np.isfinite(e), "mag error {} is not finite"),
                      (band.mag, (m < MAG_RANGE[0]) | (m > MAG_RANGE[1]),
                       f"mag {{}} is outside {list(MAG_RANGE)} (an unlisted sentinel?)"),
                      (band.mag_err, e <= 0, "mag error {} is not positive (0 would weigh the point infinitely)"),
                      (band.mag_err, _past_float4(e), "mag error {:g} is past a float4"))
        for column, bad, why in checks:
            for j in np.flatnonzero(ok & bad):
                value = {band.time: t, band.mag: m, band.mag_err: e}[column][j]
                cell = record.arrays[column][idx[j]]
                # text that is no number: reported as the file has it, not as the NaN it became
                text = str(cell) if isinstance(cell, str) and not np.isfinite(value) else None
                reason = why.format(value) if text is None else why.split(" {}")[0] + f" {text!r} is not a number"
                reject(record.file, record.where(idx[j]), column, f"{band.name} point {int(idx[j])}: " + reason,
                       {**raw, "index": int(idx[j]), "time": _num(t[j]), "mag": _num(m[j]), "mag_err": _num(e[j]),
                        **({"text": text} if text is not None else {})})
                ok[j] = False
        if not ok.any():
            reject(record.file, record.row, band.mag, f"{band.name}: empty light curve ({len(idx)} points read, "
                   f"{int(sentinel.sum())} sentinels, none valid)", raw)
            continue
        # in time order (a file out of order is sorted, counted); a point repeating an earlier one's
        # time is quarantined, the first kept (a whole band was dropped for one repeated epoch)
        order = np.argsort(t[ok], kind="stable")
        t, m, e, where = t[ok][order] + lc.time_offset_day, m[ok][order], e[ok][order], idx[ok][order]
        stats["curves_sorted"] = stats.get("curves_sorted", 0) + int(bool(np.any(np.diff(order) < 0)))
        repeat = np.flatnonzero(np.diff(t) == 0) + 1
        for j in repeat:
            reject(record.file, record.where(where[j]), band.time,
                   f"{band.name} point {int(where[j])}: duplicate time {t[j]} (point {int(where[j - 1])} has it; kept)",
                   {**raw, "index": int(where[j]), "time": _num(t[j]), "mag": _num(m[j]), "mag_err": _num(e[j])})
        stats["duplicate_epochs"] = stats.get("duplicate_epochs", 0) + len(repeat)
        keep = np.ones(len(t), dtype=bool)
        keep[repeat] = False
        t, m, e = t[keep], m[keep], e[keep]
        stats["points"] += len(t)
        yield {"band": band.name, "time_mjd": t.tolist(), "mag": m.tolist(), "mag_err": e.tolist()}


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


#: Wavelengths [Angstrom] a spectrum may have: below, they are most likely log10 values or another
#: unit than the mapping says (X-ray gratings aside, which these readers do not read).
WAVELENGTH_RANGE_AA = (10.0, 1e7)
INT4_RANGE = (-(2**31), 2**31 - 1)


def file_unit(text: str) -> u.UnitBase:
    """A unit as a file writes it: FITS TUNIT syntax first (``10**(-19).erg.cm**(-2)...``), then astropy's."""
    try:
        return u.Unit(text, format="fits")
    except ValueError:
        return u.Unit(text)


def _unit_factors(spec: SpectrumSpec, record: Record) -> tuple[dict[str, float], tuple[str, str] | None]:
    """Per array column whose file gives its own unit (FITS TUNIT): the factor from that unit to the
    mapping's. Or (column, reason) where that unit cannot be parsed or converted: the spectrum is refused."""
    flux = u.Unit(spec.flux_unit)
    expected = {spec.wavelength: u.Unit(spec.wavelength_unit), spec.flux: flux,
                spec.ivar: flux if spec.ivar_from == "sigma" else flux**-2}
    factors = {}
    for column, want in expected.items():
        text = record.units.get(column)
        if not text:
            continue
        log = column == spec.wavelength and spec.wavelength_log10
        try:
            given = file_unit(text)
        except ValueError:
            if log:  # 'log(Angstrom)' and the like: astropy reads only dex(...) as a log unit
                continue
            return {}, (column, f"the file gives {column} the unit {text!r}, which astropy cannot parse")
        if log:
            if not isinstance(given, u.DexUnit):
                continue
            given = given.physical_unit
        try:
            factors[column] = float(given.to(want))
        except u.UnitConversionError:
            return {}, (column, f"the file gives {column} in {text!r}, the mapping in {want}: not convertible")
    return factors, None


def _past_float4(values: np.ndarray) -> np.ndarray:
    """Finite values a PostgreSQL real (float4) would store as an infinity."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.abs(values) > FLOAT4_MAX)


def spectrum_row(spec: SpectrumSpec, record: Record, reject: Reject, counts: dict[str, int]) -> dict | None:
    """The spectrum row of one record, or None (rejected with the reason).

    A pixel whose flux is not finite but whose ivar is 0 (the file says: no data) is kept with
    flux NaN and counted in ``counts['nodata_pixels']``; anything else non-finite rejects the spectrum,
    as does a value a float4 or int4 column cannot hold, a wavelength outside ``WAVELENGTH_RANGE_AA``,
    and a unit the file gives (FITS TUNIT) that cannot be converted to the mapping's (one that can
    is converted, counted in ``counts['unit_converted']``).
    """
    name, column, why = format_id(spec.name, record.meta)
    raw = {"object": name or str(record.file)}
    if why:
        reject(record.file, record.row, column, f"spectrum name: {why}", raw)
        return None
    factors, refused = _unit_factors(spec, record)
    if refused:
        reject(record.file, record.row, refused[0], f"{name}: {refused[1]}", raw)
        return None
    counts["unit_converted"] = counts.get("unit_converted", 0) + int(any(f != 1 for f in factors.values()))
    wave = as_floats(record.arrays[spec.wavelength])
    flux = as_floats(record.arrays[spec.flux]) * factors.get(spec.flux, 1.0)
    sig = as_floats(record.arrays[spec.ivar]) * factors.get(spec.ivar, 1.0)
    lengths = {spec.wavelength: len(wave), spec.flux: len(flux), spec.ivar: len(sig),
               **({spec.mask: len(record.arrays[spec.mask])} if spec.mask else {})}
    if len(set(lengths.values())) > 1:  # pixel by pixel they would not belong together
        shared = Counter(lengths.values())
        column = min(lengths, key=lambda c: shared[lengths[c]])  # the one whose length the others do not share
        reject(record.file, record.row, column, f"{name}: arrays of different lengths, "
               + ", ".join(f"{c} {n}" for c, n in lengths.items()), raw)
        return None
    if spec.ivar_from == "sigma":
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ivar = np.where(sig > 0, 1.0 / sig**2, np.where(sig == 0, 0.0, np.nan))
    else:
        ivar = sig
    if spec.wavelength_log10:
        with np.errstate(over="ignore"):
            wave = 10.0**wave
    wave = wave * factors.get(spec.wavelength, 1.0)
    mask = as_floats(record.arrays[spec.mask]) if spec.mask else np.zeros(len(wave))
    nodata = ~np.isfinite(flux) & (ivar == 0)
    in_aa = wave * u.Unit(spec.wavelength_unit).to(u.AA)
    lo, hi = WAVELENGTH_RANGE_AA
    with np.errstate(invalid="ignore", over="ignore"):
        problems = ((spec.wavelength, wave, ~np.isfinite(wave), "wavelength is not finite"),
                    (spec.wavelength, wave, _past_float4(wave), "wavelength {:g} is past a float4"),
                    (spec.wavelength, wave, (in_aa < lo) | (in_aa > hi),
                     f"wavelength {{:g}} {spec.wavelength_unit} is outside [{lo:g}, {hi:g}] Angstrom "
                     "(another unit than the mapping says, or log10 values?)"),
                    # as stored: float4 neighbours that round to one value do not increase either
                    (spec.wavelength, wave, np.r_[False, np.diff(wave.astype(np.float32)) <= 0],
                     "wavelength does not increase"),
                    (spec.flux, flux, ~np.isfinite(flux) & ~nodata, "flux is not finite where ivar > 0"),
                    (spec.flux, flux, _past_float4(flux), "flux {:g} is past a float4"),
                    (spec.ivar, ivar, ~np.isfinite(ivar), f"{spec.ivar_from} is not finite"),
                    (spec.ivar, ivar, ivar < 0, f"{spec.ivar_from} is negative"),
                    # 0 is no data: an ivar (or 1/sigma**2) too small for a float4 must not become one
                    (spec.ivar, ivar, _past_float4(ivar) | ((sig > 0) & (ivar.astype(np.float32) == 0)),
                     "ivar {:g} does not fit a float4 (it would be stored as infinite or as 0, no data)"),
                    (spec.mask, mask, ~np.isfinite(mask) | (mask != np.round(mask)) | (mask < INT4_RANGE[0])
                     | (mask > INT4_RANGE[1]), f"mask {{}} is not an integer in {list(INT4_RANGE)} (an int4)"))
    if len(wave) == 0:
        reject(record.file, record.row, spec.flux, f"{name}: empty spectrum (no pixels)", raw)
        return None
    for col, values, bad, what in problems:
        if bad.any():
            k, more = int(np.flatnonzero(bad)[0]), int(bad.sum()) - 1
            reject(record.file, record.row, col, f"{name}: {what.format(values[k])} at pixel {k}"
                   + (f" (and {more} more)" if more else ""), {**raw, "pixel": k})
            return None
    counts["nodata_pixels"] = counts.get("nodata_pixels", 0) + int(nodata.sum())
    mjd = record.meta.get(spec.mjd) if spec.mjd else None
    return {"name": name, "wavelength": wave.tolist(), "flux": flux.tolist(), "ivar": ivar.tolist(),
            "mask": mask.astype(np.int64).tolist() if spec.mask else None,
            "mjd": float(mjd) if mjd is not None else None}


def group_by_position(ra_deg: np.ndarray, dec_deg: np.ndarray, good: np.ndarray,
                      within_arcsec: float | None) -> np.ndarray:
    """A group number per row: rows within ``within_arcsec`` of each other (transitively) share one."""
    groups = np.arange(len(good))
    idx = np.flatnonzero(good)
    if within_arcsec is None or len(idx) < 2:
        return groups
    coords = SkyCoord(ra_deg[idx] * u.deg, dec_deg[idx] * u.deg)
    # All pairs, vectorised per row: a release holds tens to thousands of spectra, not millions.
    pairs = [(k, j) for k in range(len(idx))
             for j in np.flatnonzero(coords[k].separation(coords[k + 1:]) <= within_arcsec * u.arcsec) + k + 1]
    a = np.array([k for k, _ in pairs], dtype=np.int64)
    b = np.array([j for _, j in pairs], dtype=np.int64)
    parent = {int(i): int(i) for i in idx}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in zip(idx[a], idx[b]):
        parent[root(int(i))] = root(int(j))
    for i in idx:
        groups[i] = root(int(i))
    return groups
