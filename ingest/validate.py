"""Row validation: every input row is kept, either as good or in quarantine with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ingest.mapping import Mapping, MappedChunk, json_scalar


@dataclass(frozen=True)
class Rejected:
    row_number: int
    column: str | None
    reason: str
    raw: dict[str, Any]


def validate(mapping: Mapping, chunk: MappedChunk, seen_ids: set[str]) -> tuple[np.ndarray, list[Rejected]]:
    """A mask of the good rows of ``chunk`` and the rejected ones with file-row, column and reason.

    ``seen_ids`` carries object ids across chunks to find duplicates within a release.
    """
    n = len(chunk.object_id)
    reason: list[tuple[str | None, str] | None] = [None] * n

    def reject(mask: np.ndarray, column: str | None, why) -> None:
        for i in np.flatnonzero(mask):
            if reason[i] is None:
                reason[i] = (column, why(i) if callable(why) else why)

    reject(np.array([x is None for x in chunk.object_id], dtype=bool), None,
           f"object_id template {mapping.object_id!r} could not be formed")
    if chunk.ra_deg is not None:
        ra_col, dec_col = mapping.ra.name, mapping.dec.name
        reject(~np.isfinite(chunk.ra_deg), ra_col, "ra is missing or not finite")
        reject(~np.isfinite(chunk.dec_deg), dec_col, "dec is missing or not finite")
        with np.errstate(invalid="ignore"):
            reject(np.abs(chunk.dec_deg) > 90, dec_col, lambda i: f"dec {chunk.dec_deg[i]!r} deg is outside [-90, 90]")
    for i, oid in enumerate(chunk.object_id):
        if reason[i] is None:
            if oid in seen_ids:
                reason[i] = (None, f"duplicate object_id {oid!r} within the release")
            else:
                seen_ids.add(oid)
    good = np.array([r is None for r in reason], dtype=bool)
    names = chunk.raw.colnames
    rejected = [
        Rejected(int(chunk.row_number[i]), reason[i][0], reason[i][1],
                 {k: json_scalar(v) for k, v in zip(names, chunk.raw[i])})
        for i in np.flatnonzero(~good)
    ]
    return good, rejected
