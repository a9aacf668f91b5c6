"""Row validation: every input row is kept, either as good or in quarantine with a reason.

A row is rejected, with the column and the value named, when a cell cannot be read (text
where a number belongs, a float that is no exact integer id), its object id cannot be
formed or repeats one earlier in the release, its position is missing or outside ICRS
ranges, a magnitude is outside what any survey measures, a redshift outside what any
spectrum gives, a redshift quality that is no whole number, a rotation period missing or not positive, a membership probability
outside [0, 1], a stellar mass outside what a galaxy or star cluster weighs, an error, colour, age
or star-formation rate outside its plausible range (where an undeclared -9999 or 1e20 lands), or a
common 'no data' value (:data:`ingest.cells.COMMON_SENTINELS`) where no range catches it. Missing
values (empty cells, the mapping's sentinels) are not errors: they simply have no row
in their table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ingest.cells import json_scalar, sentinel_like
from ingest.mapping import AB_ZERO_POINT_UJY, FLUX_MAG_FAINTEST, REQUIRED, ROW_FIELD, MappedChunk, Mapping

MAG_RANGE = (-30.0, 50.0)  # [mag]: the Sun is -26.7; the deepest surveys reach about 30
#: [mag] of a catalogue flux: no source a survey catalogues is brighter than -5 (Venus at its brightest: -4.9);
#: a 1e20 nanomaggy sentinel gives -27.5, which MAG_RANGE would let pass as the Sun. The faint end is no
#: problem: a flux fainter is a non-detection, its magnitude NULL by now (mapping.FLUX_MAG_FAINTEST).
FLUX_MAG_RANGE = (-5.0, FLUX_MAG_FAINTEST)
MAX_FLUX_UJY = AB_ZERO_POINT_UJY * 10 ** (-0.4 * FLUX_MAG_RANGE[0])  # [uJy] of a mag -5 source: errors stay below it
Z_RANGE = (-0.01, 15.0)  # stars have |z| < 0.01 from their velocities; no spectrum gives z > 15
#: (section, key) -> plausible [lo, hi] and what a value outside it usually means.
RANGES = {
    ("spec_redshift", "z"): (Z_RANGE, ""),
    ("rotation_period", "period"): ((1e-3, 1e4), " [d]"),  # minutes to decades
    ("rotation_period", "membership_prob"): ((0.0, 1.0), " (a probability)"),
    ("stellar_mass", "log_mass"): ((3.0, 13.5), " [log10 Msun]"),  # a few stars to the most massive galaxies
    # Undeclared sentinels (-9999, -99, 1e20) fall outside these; each was stored as a value before.
    ("spec_redshift", "z_err"): ((0.0, Z_RANGE[1]), ""),
    ("rotation_period", "period_err"): ((0.0, 1e4), " [d]"),  # zero: some catalogues round small errors to it
    # BP-RP of the bluest stars is about -0.5; ChronoFlow dereddens a faint HPer star (G 19.9) to -1.54 +- 0.64
    ("rotation_period", "bp_rp_dered"): ((-2.0, 10.0), " [mag]"),
    ("rotation_period", "cluster_age_myr"): ((0.0, 1.4e4), " [Myr]"),  # (0, 14 Gyr]: see OPEN_BELOW
    **{("stellar_mass", key): ((3.0, 13.5), " [log10 Msun]") for key in ("log_mass_p16", "log_mass_p84")},
    **{("stellar_mass", key): ((-10.0, 5.0), " [log10 Msun/yr]") for key in ("log_sfr", "log_sfr_p16", "log_sfr_p84")},
}
#: (section, key) of RANGES whose lower bound is excluded: a cluster's age is never zero.
OPEN_BELOW = {("rotation_period", "cluster_age_myr")}
#: (section, key) with no range of their own whose common 'no data' values (-9999, 1e20) quarantine their row
#: unless the section lists them under its sentinels.
SENTINEL_CHECKED = {("spec_redshift", "quality")}
#: (section, key) stored as a PostgreSQL integer: a value must be whole and fit (int4 here).
INTEGERS = {("spec_redshift", "quality"): 2**31 - 1}
FLOAT4_MAX = float(np.finfo(np.float32).max)  # a larger value would be stored as an infinity


class SeenIds:
    """The object ids of a release's good rows so far, in bounded memory: 12 bytes per id.

    Ids are kept as 64-bit hashes in a few sorted arrays (merged as they grow, like a binary
    counter), each beside the file row that had it first (4 bytes: a duplicate's reason names the row
    it repeats), so a 10-million-row release costs 120 MB (up to ~32 bytes per id while two levels
    merge), not a set of 10 million strings. A hash
    seen before is a duplicate once ``confirm`` (the ids that really are already in the release,
    asked of the database) agrees, so two different ids never quarantine each other.
    """

    def __init__(self, confirm=None):
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, the file row of each)
        self._confirm = confirm

    def earlier_rows(self, ids: list[str], rows=None) -> dict[int, int | None]:
        """The indexes (into ``ids``) of ids seen before, in earlier calls or earlier in ``ids``, each with
        the file row (``rows``: each id's) that had it first, None where that row is not known (``rows``
        not given, then or now); the rest are remembered."""
        rows = np.zeros(len(ids), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        rows = np.where(rows < 2**32, rows, 0).astype(np.uint32)  # a row past 4,294,967,295: not named
        hashes = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
        seen_before = np.zeros(len(ids), dtype=bool)
        earlier = np.zeros(len(ids), dtype=np.uint32)  # 0: no row known
        stored: dict[int, tuple[np.ndarray, int]] = {}  # index -> (its level's rows, its place there)
        for level, level_rows in self._levels:
            pos = np.minimum(np.searchsorted(level, hashes), len(level) - 1)
            found = ~seen_before & (level[pos] == hashes)
            earlier[found] = level_rows[pos[found]]
            stored.update((int(i), (level_rows, int(pos[i]))) for i in np.flatnonzero(found))
            seen_before |= found
        cleared = set()
        if seen_before.any() and self._confirm is not None:
            suspects = np.flatnonzero(seen_before)
            really = self._confirm([ids[i] for i in suspects])
            cleared = {int(i) for i in suspects if ids[i] not in really}
            for i in cleared:  # the row remembered is not in the release (rejected after validation, or
                level_rows, at = stored[i]  # another id of the same hash): this row is, from now on
                level_rows[at] = rows[i]
            seen_before[list(cleared)] = False
        first = {}
        dups = {int(i): int(earlier[i]) or None for i in np.flatnonzero(seen_before)}
        for i, oid in enumerate(ids):
            if i not in dups:
                if oid in first:
                    dups[i] = int(rows[first[oid]]) or None
                else:
                    first[oid] = i
        kept = sorted(i for i in first.values() if i not in cleared)  # (cleared: remembered already)
        order = np.argsort(hashes[kept], kind="stable")
        self._add(hashes[kept][order], rows[kept][order])
        return dups

    def _add(self, level: np.ndarray, level_rows: np.ndarray) -> None:
        if not len(level):  # a chunk whose every row was quarantined: an empty level has no last element to look at
            return
        while self._levels and len(self._levels[-1][0]) <= len(level):
            below, below_rows = self._levels.pop()
            merged, merged_rows = np.concatenate([below, level]), np.concatenate([below_rows, level_rows])
            order = np.argsort(merged, kind="stable")  # an equal hash (a collision): the earlier row first
            level, level_rows = merged[order], merged_rows[order]
        self._levels.append((level, level_rows))


@dataclass(frozen=True)
class Rejected:
    row_number: int
    column: str | None
    reason: str
    raw: dict[str, Any]


def _outside(values: np.ndarray, lo: float, hi: float, open_below: bool = False) -> np.ndarray:
    """Present (not NaN) values outside [lo, hi], or (lo, hi] when ``open_below`` (infinities included)."""
    present = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        return present & ~(((values > lo) if open_below else (values >= lo)) & (values <= hi))


def validate(mapping: Mapping, chunk: MappedChunk, seen_ids: SeenIds,
             row_name: Callable[[int], str] = "row {}".format) -> tuple[np.ndarray, list[Rejected]]:
    """A mask of the good rows of ``chunk`` and the rejected ones with file row, column and reason.

    ``seen_ids`` carries object ids across chunks to find duplicates within a release; ``row_name``
    names a row number of the chunk in a duplicate's reason (the row it repeats): ``row 5`` in the file,
    or where a table of several files says.
    """
    reason: dict[int, tuple[str | None, str]] = dict(chunk.problems)

    def reject(mask: np.ndarray, column: str | None, why) -> None:
        for i in np.flatnonzero(mask):
            reason.setdefault(int(i), (column, why(i)))

    if chunk.ra_deg is not None:
        ra, dec = chunk.ra_deg, chunk.dec_deg
        ra_col, dec_col = mapping.ra.name, mapping.dec.name
        reject(np.isnan(ra), ra_col, lambda i: f"{ra_col} is missing")
        reject(np.isnan(dec), dec_col, lambda i: f"{dec_col} is missing")
        reject(_outside(ra, 0.0, 360.0), ra_col, lambda i: f"ra {ra[i]} deg is outside [0, 360] (wrong unit?)")
        reject(_outside(dec, -90.0, 90.0), dec_col, lambda i: f"dec {dec[i]} deg is outside [-90, 90]")
    for band, phot in chunk.phot.items():
        spec = mapping.bands[band]
        col = spec.mag or spec.flux
        mags = phot.mag
        if spec.flux:
            _flux_checks(spec, phot, mapping, reject)
        else:
            reject(_outside(mags, *MAG_RANGE), col,
                   lambda i, m=mags, c=col: f"{c} {m[i]} mag is outside {list(MAG_RANGE)} (an unlisted sentinel?)")
        # stored as float4 (real): flux, its error and the magnitude's error must be finite and fit one;
        # the values the file gives are looked at before those derived from them
        float4 = [(phot.flux_ujy, spec.flux or spec.mag, "flux {:g} uJy"),
                  (phot.flux_err_ujy, spec.flux_error or spec.mag_err, "flux error {:g} uJy"),
                  (phot.mag_err, spec.mag_err or spec.flux_error, "magnitude error {:g}")]
        for values, column, what in float4[::-1] if spec.mag else float4:
            reject(_outside(values, -FLOAT4_MAX, FLOAT4_MAX), column or col,
                   lambda i, v=values, c=column or col, what=what, b=band:
                   f"{c}: {b} {what.format(v[i])} is infinite or past a float4 (|x| <= {FLOAT4_MAX:.4g})")
    for name, values in chunk.sections.items():
        for key, column in mapping.sections[name].items():
            if (name, key) in RANGES:
                (lo, hi), unit = RANGES[name, key]
                v, open_below = values[key], (name, key) in OPEN_BELOW
                reject(_outside(v, lo, hi, open_below), column,
                       lambda i, v=v, c=column, lo=lo, hi=hi, unit=unit, b="(" if open_below else "[":
                       f"{c} {v[i]} is outside {b}{lo}, {hi}]{unit}")
            if (name, key) in SENTINEL_CHECKED:
                v = values[key]
                reject(sentinel_like(v), column, lambda i, v=v, c=column, s=name: f"{c} {v[i]:g} is a common "
                       f"'no data' value, not a measurement (list it under [{s}] sentinels if it means none)")
            if (name, key) in INTEGERS:
                v, top = values[key], INTEGERS[name, key]
                with np.errstate(invalid="ignore"):
                    bad = ~np.isnan(v) & ~((v == np.floor(v)) & (np.abs(v) <= top))
                reject(bad, column, lambda i, v=v, c=column, top=top: f"{c} {v[i]} is not a whole number "
                                                                      f"in [{-top}, {top}]")
    for name, key in REQUIRED.items():  # a row of a per-release table without its value (a sentinel: none)
        if name in chunk.sections:
            column, listed = mapping.sections[name][key], mapping.section_sentinels.get(name)
            why = f"{column} is missing" + (f" (empty, or a [{name}] sentinel: {', '.join(f'{v:g}' for v in listed)})"
                                            if listed else "")
            reject(np.isnan(chunk.sections[name][key]), column, lambda i, why=why: why)
    candidates = [i for i, oid in enumerate(chunk.object_id) if i not in reason and oid is not None]
    id_columns = ",".join(f for f in mapping.object_id_fields if f != ROW_FIELD) or None  # what the id is made of
    earlier = seen_ids.earlier_rows([chunk.object_id[i] for i in candidates], chunk.row_number[candidates])
    for j, row in earlier.items():
        i = candidates[j]
        reason[i] = (id_columns, f"duplicate object_id {chunk.object_id[i]!r} within the release"
                                 + (f" (repeats the object id of {row_name(row)})" if row is not None else ""))
    good = np.ones(len(chunk.object_id), dtype=bool)
    good[list(reason)] = False
    rejected = [quarantined(chunk, i, *reason[i]) for i in sorted(reason)]
    return good, rejected


def _flux_checks(spec, phot, mapping: Mapping, reject) -> None:
    """A flux band's values in the file's unit: a flux whose magnitude is outside FLUX_MAG_RANGE, a flux or
    flux error equal to a common 'no data' value (the mapping's own sentinels are missing by now), an error
    larger than the flux of the brightest source."""
    flux, flux_err, unit = phot.flux_in_file, phot.flux_err_in_file, spec.unit
    lo, hi = FLUX_MAG_RANGE
    hint = "(an unlisted sentinel? list it under [photometry] sentinels)"
    error = spec.flux_error_name
    reject(_outside(phot.mag, lo, hi), spec.flux, lambda i, m=phot.mag: (
        f"{spec.flux} {flux[i]:g} {unit} gives mag {m[i]:.1f}, outside [{lo:g}, {hi:g}] {hint}"))
    for values, column, name in ((flux, spec.flux, spec.flux), (flux_err, spec.flux_error, error)):
        reject(sentinel_like(values), column, lambda i, v=values, n=name: (
            f"{n} {v[i]:g} {unit} is a common 'no data' value {hint}"))
    with np.errstate(invalid="ignore"):
        big = phot.flux_err_ujy > MAX_FLUX_UJY
    reject(big, spec.flux_error, lambda i: (f"{error} {flux_err[i]:g} {unit} is an error larger than the flux "
                                            f"of a mag {lo:g} source ({MAX_FLUX_UJY:.3g} uJy) {hint}"))


def quarantined(chunk: MappedChunk, i: int, column: str | None, why: str) -> Rejected:
    """Row ``i`` of the chunk as a quarantine entry: its file row, the column, the reason and the raw row."""
    names = chunk.raw.colnames
    raw = {k: json_scalar(v, raw=True) for k, v in zip(names, chunk.raw[i])}
    return Rejected(int(chunk.row_number[i]), column, why, raw)
