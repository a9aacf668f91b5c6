"""Row validation: every input row is kept, either as good or in quarantine with a reason.

A row is rejected, with the column and the value named, when a cell cannot be read (text
where a number belongs), its object id cannot be formed or repeats one earlier in the
release, its position is missing or outside ICRS ranges, a magnitude is outside what any
survey measures, or a redshift is outside what any spectrum gives. Missing values (empty
cells, the mapping's sentinels) are not errors: they simply have no row in their table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ingest.mapping import MappedChunk, Mapping, json_scalar

MAG_RANGE = (-30.0, 50.0)  # [mag]: the Sun is -26.7; the deepest surveys reach about 30
Z_RANGE = (-0.01, 15.0)  # stars have |z| < 0.01 from their velocities; no spectrum gives z > 15


@dataclass(frozen=True)
class Rejected:
    row_number: int
    column: str | None
    reason: str
    raw: dict[str, Any]


def _outside(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Present (not NaN) values outside [lo, hi] (infinities included)."""
    present = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        return present & ~((values >= lo) & (values <= hi))


def validate(mapping: Mapping, chunk: MappedChunk, seen_ids: set[str]) -> tuple[np.ndarray, list[Rejected]]:
    """A mask of the good rows of ``chunk`` and the rejected ones with file row, column and reason.

    ``seen_ids`` carries object ids across chunks to find duplicates within a release.
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
    for band, mags in chunk.mags.items():
        col = mapping.bands[band]
        reject(_outside(mags, *MAG_RANGE), col,
               lambda i, m=mags, c=col: f"{c} {m[i]} mag is outside {list(MAG_RANGE)} (an unlisted sentinel?)")
    if "z" in chunk.spec:
        z, col = chunk.spec["z"], mapping.spec_redshift["z"]
        reject(_outside(z, *Z_RANGE), col, lambda i: f"{col} {z[i]} is outside {list(Z_RANGE)}")
    for i, oid in enumerate(chunk.object_id):
        if i not in reason and oid is not None:
            if oid in seen_ids:
                reason[i] = (None, f"duplicate object_id {oid!r} within the release")
            else:
                seen_ids.add(oid)
    good = np.ones(len(chunk.object_id), dtype=bool)
    good[list(reason)] = False
    names = chunk.raw.colnames
    rejected = [
        Rejected(int(chunk.row_number[i]), reason[i][0], reason[i][1],
                 {k: json_scalar(v) for k, v in zip(names, chunk.raw[i])})
        for i in sorted(reason)
    ]
    return good, rejected
